#include "fixtures.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>

#include "dae/train/checkpoint.hpp"
#include "dae/core/error.hpp"
#include "dae/data/dataset.hpp"
#include "dae/io/h5.hpp"
#include "dae/model/model.hpp"

namespace dae::testing {

std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                    const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> bytes = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t dim : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back((dim >> shift) & 0xFF);
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  gzFile file = gzopen(path.string().c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
}

MnistSplit synthetic_split(std::uint32_t count, std::uint32_t seed) {
  MnistSplit split;
  split.count = count;
  split.images.assign(static_cast<std::size_t>(count) * kImageSide * kImageSide, 0);
  split.labels.resize(count);
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (std::uint32_t n = 0; n < count; ++n) {
    split.labels[n] = static_cast<std::uint8_t>(n % 10);
    // Two soft line segments per image: digit-like strokes on a dark background.
    for (int stroke = 0; stroke < 2; ++stroke) {
      const double x0 = 6 + 16 * uniform(engine), y0 = 6 + 16 * uniform(engine);
      const double x1 = 6 + 16 * uniform(engine), y1 = 6 + 16 * uniform(engine);
      for (std::uint32_t y = 0; y < kImageSide; ++y) {
        for (std::uint32_t x = 0; x < kImageSide; ++x) {
          const double dx = x1 - x0, dy = y1 - y0;
          const double t = std::clamp(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9),
                                      0.0, 1.0);
          const double distance = std::hypot(x - (x0 + t * dx), y - (y0 + t * dy));
          const double value = 255.0 * std::exp(-distance * distance / 2.0);
          auto& pixel = split.images[(static_cast<std::size_t>(n) * kImageSide + y) * kImageSide + x];
          pixel = static_cast<std::uint8_t>(std::max<double>(pixel, std::min(255.0, value)));
        }
      }
    }
  }
  return split;
}

MnistSplit row_pattern_split(std::uint32_t count) {
  MnistSplit split;
  split.count = count;
  split.images.resize(static_cast<std::size_t>(count) * kImageSide * kImageSide);
  split.labels.resize(count);
  for (std::uint32_t n = 0; n < count; ++n) {
    std::fill_n(split.images.begin() + static_cast<std::ptrdiff_t>(n) * kImageSide * kImageSide,
                kImageSide * kImageSide, static_cast<std::uint8_t>(n % 251));
    split.labels[n] = static_cast<std::uint8_t>(n % 10);
  }
  return split;
}

void write_idx_dir(const std::filesystem::path& dir, const MnistSplit& train,
                   const MnistSplit& test, bool gzip) {
  std::filesystem::create_directories(dir);
  auto put = [&](const std::string& name, const std::vector<std::uint32_t>& dims,
                 const std::vector<std::uint8_t>& data) {
    const auto bytes = idx_bytes(dims, data);
    if (gzip)
      write_gzip(dir / (name + ".gz"), bytes);
    else
      write_bytes(dir / name, bytes);
  };
  put("train-images-idx3-ubyte", {train.count, kImageSide, kImageSide}, train.images);
  put("train-labels-idx1-ubyte", {train.count}, train.labels);
  put("t10k-images-idx3-ubyte", {test.count, kImageSide, kImageSide}, test.images);
  put("t10k-labels-idx1-ubyte", {test.count}, test.labels);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "dae_test_XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

CommandResult run_command(const std::string& command) {
  CommandResult result;
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exit_code = 128 + WTERMSIG(status);
  return result;
}

CommandResult run_and_act(const std::string& command, const std::string& ready,
                          const std::string& act, const std::string& log) {
  return run_command("( " + command + " > " + log + " 2>&1 & job=$!; " +
                     "for i in $(seq 600); do " + ready + " && break; sleep 0.1; done; " + act +
                     "; acted=$(date +%s%N); wait $job; rc=$?; " +
                     "echo ACT_TO_EXIT_MS=$(( ($(date +%s%N) - acted) / 1000000 )); " +
                     "echo EXIT=$rc; cat " + log + " )");
}

long act_to_exit_ms(const std::string& output) {
  const auto at = output.find("ACT_TO_EXIT_MS=");
  return at == std::string::npos ? -1 : std::stol(output.substr(at + 15));
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

std::string checkpoint_load_error(const std::string& path) {
  ConvDae model;
  torch::optim::Adam optimizer(model->parameters());
  try {
    load_checkpoint(path, *model, optimizer);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::string mpirun(int ranks) {
  return std::string(DAE_MPIEXEC) + " -np " + std::to_string(ranks) +
         " --oversubscribe --allow-run-as-root --bind-to none";
}

double relative_difference(const torch::Tensor& got, const torch::Tensor& expected) {
  const torch::Tensor reference = expected.cpu();
  return ((got.cpu() - reference).norm() / reference.norm()).item<double>();
}

std::pair<ModelPtr, ModelPtr> twin_models(const Config& config, torch::Device device) {
  torch::manual_seed(7);
  ModelPtr first = make_model(config.model);
  ModelPtr second = make_model(config.model);
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < first->parameters().size(); ++i)
      second->parameters()[i].copy_(first->parameters()[i]);
  }
  first->to(device);
  second->to(device);
  return {first, second};
}

std::string write_small_data_file(const std::string& path) {
  write_data_file(path, synthetic_split(400, 3), synthetic_split(40, 4), "synthetic");
  return path;
}

void write_model_checkpoint(const std::string& path, Denoiser& model,
                            const std::string& config_text, std::int64_t step) {
  torch::optim::Adam adam(model.parameters());
  CheckpointData data;
  data.step = step;
  data.world_size = 1;
  data.cursors.push_back({0, 0});
  data.noise_states.push_back(at::make_generator<at::CPUGeneratorImpl>().get_state());
  write_checkpoint_file(path, model, adam, data, config_text);
}

std::vector<float> checkpoint_values(const std::string& checkpoint) {
  const H5File file = H5File::open_read_only(checkpoint);
  std::vector<float> values;
  for (const char* name : {"encoder1.weight", "encoder1.bias", "encoder2.weight", "encoder2.bias",
                           "decoder1.weight", "decoder2.weight"})
    for (const std::string& dataset :
         {std::string("/model/") + name, std::string("/optimizer/") + name + "/exp_avg",
          std::string("/optimizer/") + name + "/exp_avg_sq"}) {
      const auto part = file.read<float>(dataset);
      values.insert(values.end(), part.begin(), part.end());
    }
  return values;
}

}  // namespace dae::testing
