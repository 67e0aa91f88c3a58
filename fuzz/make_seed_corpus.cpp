// Writes the seed corpus of every fuzz target into OUT/<target>/: small valid inputs (and a few
// near-valid ones) from the tests' fixtures, so that fuzzing starts from the real formats.
// Usage: make_seed_corpus OUT SOURCE_DIR
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dae/train/checkpoint.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"
#include "fixtures.hpp"
#include "fuzz_model.hpp"

namespace fs = std::filesystem;

namespace {

using dae::testing::idx_bytes;

// A checkpoint of TinyDae for `world` ranks, written by the project's own writer (Checkpointer
// needs an MPI job; write_checkpoint_file does not); main() proves each one loads.
void write_checkpoint(const std::string& path, int world, bool with_optimizer) {
  dae::fuzz::TinyDae model;
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(0.01));
  if (with_optimizer) {  // one step gives Adam its moments and step counts
    torch::Tensor loss = torch::zeros({1});
    for (const auto& parameter : model.parameters()) loss = loss + parameter.sum();
    loss.backward();
    adam.step();
  }
  dae::CheckpointData data;
  data.step = 7;
  data.world_size = world;
  data.last_loss = 0.05;
  data.loss_history = {{5, 0.07}, {7, 0.05}};
  for (int r = 0; r < world; ++r) {
    data.cursors.push_back({1, 3});
    data.noise_states.push_back(at::make_generator<at::CPUGeneratorImpl>().get_state());
  }
  dae::write_checkpoint_file(path, model, adam, data, "steps 10");

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
    for (const auto& entry : fs::recursive_directory_iterator(source / "configs"))
      if (entry.is_regular_file() && entry.path().extension() == ".ini")
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
