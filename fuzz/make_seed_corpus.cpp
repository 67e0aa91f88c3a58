// Writes the seed corpus of every fuzz target into OUT/<target>/: small valid inputs (and a few
// near-valid ones) from the tests' fixtures, so that fuzzing starts from the real formats.
// Usage: make_seed_corpus OUT SOURCE_DIR
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dae/checkpoint.hpp"
#include "dae/dataset.hpp"
#include "dae/error.hpp"
#include "dae/h5.hpp"
#include "fixtures.hpp"
#include "fuzz_model.hpp"

namespace fs = std::filesystem;

namespace {

using dae::testing::idx_bytes;

// The layout of include/dae/checkpoint.hpp, for TinyDae and `world` ranks. Written here rather
// than by dae::Checkpointer (which needs an MPI job); main() proves each one loads.
void write_checkpoint(const std::string& path, int world, bool with_optimizer) {
  dae::fuzz::TinyDae model;
  const dae::H5Storage checked{1u << 20, 0, true};
  dae::H5File file = dae::H5File::create(path);
  for (const auto& item : model.named_parameters()) {
    const torch::Tensor value = item.value().detach().contiguous();
    const std::vector<std::uint64_t> dims(value.sizes().begin(), value.sizes().end());
    file.write<float>("/model/" + item.key(), dims, value.data_ptr<float>(), checked);
    if (!with_optimizer) continue;
    const torch::Tensor moment = torch::rand_like(value);
    file.write<float>("/optimizer/" + item.key() + "/exp_avg", dims, moment.data_ptr<float>(),
                      checked);
    file.write<float>("/optimizer/" + item.key() + "/exp_avg_sq", dims, moment.data_ptr<float>(),
                      checked);
    const std::int64_t step = 7;
    file.write<std::int64_t>("/optimizer/" + item.key() + "/step", {1}, &step, checked);
  }
  file.create_group("/optimizer");
  file.write_attribute("/optimizer", "lr", 0.01);
  const std::int64_t step = 7, world_size = world;
  file.write<std::int64_t>("/state/step", {1}, &step, checked);
  file.write<std::int64_t>("/state/world_size", {1}, &world_size, checked);
  const std::vector<std::int64_t> epochs(world, 1), positions(world, 3);
  file.write<std::int64_t>("/state/epoch", {epochs.size()}, epochs.data(), checked);
  file.write<std::int64_t>("/state/position", {positions.size()}, positions.data(), checked);
  const torch::Tensor rng = at::make_generator<at::CPUGeneratorImpl>().get_state();
  std::vector<std::uint8_t> states;
  for (int r = 0; r < world; ++r)
    states.insert(states.end(), rng.data_ptr<std::uint8_t>(),
                  rng.data_ptr<std::uint8_t>() + rng.numel());
  file.write<std::uint8_t>("/state/noise_rng",
                           {static_cast<std::uint64_t>(world), static_cast<std::uint64_t>(rng.numel())},
                           states.data(), checked);
  const double loss = 0.05;
  file.write<double>("/state/last_loss", {1}, &loss, checked);
  file.write_attribute("/", "format_version", dae::kCheckpointFormatVersion);
  file.write_attribute("/", "libtorch_version", std::string("seed"));
  file.write_attribute("/", "config", std::string("steps 10"));
  file.write_attribute("/", "complete", std::int64_t{1});
  file.close();

  // A seed the loader refuses would waste the fuzzer's start: prove it loads.
  dae::fuzz::TinyDae loaded;
  torch::optim::Adam optimizer(loaded.parameters());
  dae::load_checkpoint(path, loaded, optimizer);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seed_corpus OUT SOURCE_DIR\n");
    return 2;
  }
  const fs::path out = argv[1], source = argv[2];
  try {
    torch::manual_seed(1);
    for (const char* target : {"idx", "config", "data_file", "checkpoint"})
      fs::create_directories(out / target);

    // IDX: a small image file and its labels, raw and gzip; other ranks and an empty array.
    const dae::MnistSplit split = dae::testing::synthetic_split(2, 1);
    const auto images = idx_bytes({2, 28, 28}, split.images);
    const auto labels = idx_bytes({2}, split.labels);
    dae::testing::write_bytes(out / "idx" / "images.idx", images);
    dae::testing::write_bytes(out / "idx" / "labels.idx", labels);
    dae::testing::write_gzip(out / "idx" / "images.idx.gz", images);
    dae::testing::write_gzip(out / "idx" / "labels.idx.gz", labels);
    dae::testing::write_bytes(out / "idx" / "four_dims.idx", idx_bytes({1, 2, 3, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
    dae::testing::write_bytes(out / "idx" / "empty.idx", idx_bytes({0}, {}));

    // INI: the shipped configurations, and one naming every key.
    for (const auto& entry : fs::directory_iterator(source / "configs"))
      fs::copy_file(entry.path(), out / "config" / entry.path().filename(),
                    fs::copy_options::overwrite_existing);
    std::ofstream(out / "config" / "every_key.ini")
        << "# every option\ndata = data/x.h5\nrun-dir = runs/x\nsteps = 20\nbatch-size = 5\n"
           "lr = 0.001\nnoise = 0.5\nseed = 7\nlog-every = 2\nthreads = 1\n"
           "output-activation = sigmoid\neval-noise = 0,0.5,1\neval-batch = 10\n"
           "checkpoint-every = 5\nkeep-checkpoints = 2\nresume = auto\n";

    // Data files: one row per split (one chunk each), and a few rows more.
    dae::write_data_file((out / "data_file" / "tiny.h5").string(),
                         dae::testing::synthetic_split(1, 2), dae::testing::row_pattern_split(1),
                         "seed");
    dae::write_data_file((out / "data_file" / "small.h5").string(),
                         dae::testing::row_pattern_split(5), dae::testing::row_pattern_split(3),
                         "seed");

    // Checkpoints: one rank after some steps; two ranks before the first step (no moments).
    write_checkpoint((out / "checkpoint" / "one_rank.h5").string(), 1, true);
    write_checkpoint((out / "checkpoint" / "two_ranks_no_moments.h5").string(), 2, false);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "make_seed_corpus: %s\n", error.what());
    return 1;
  }
  return 0;
}
