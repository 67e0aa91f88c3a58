// defines: test fixtures written by the tests themselves: IDX bytes, synthetic digit splits,
//          temporary directories, running a command and capturing its output
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/io/idx.hpp"
#include "dae/model/model.hpp"

namespace dae::testing {

// IDX bytes: magic 00 00 08 <ndims>, big-endian dims, data.
std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                    const std::vector<std::uint8_t>& data);
void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);
void write_gzip(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);

// `count` images of soft strokes, deterministic in `seed`, labels cycling 0..9.
MnistSplit synthetic_split(std::uint32_t count, std::uint32_t seed);
// Images whose every pixel holds (row index mod 251) and labels (row mod 10): lets a test tell
// exactly which global rows a reader returned.
MnistSplit row_pattern_split(std::uint32_t count);

// Writes the four IDX files of a split pair into `dir` (raw or gzip).
void write_idx_dir(const std::filesystem::path& dir, const MnistSplit& train,
                   const MnistSplit& test, bool gzip);

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;  // the process's exit status, or 128 + signal
  std::string output;  // stdout and stderr together
  double seconds = 0;
};
// Runs `command` with /bin/sh, capturing its output.
CommandResult run_command(const std::string& command);

// Starts `command` in the background (its output to `log`), waits until `ready` (a shell test)
// holds, runs `act`, and returns "ACT_TO_EXIT_MS=<ms from act to the command's end>",
// "EXIT=<code>" and then the command's output.
CommandResult run_and_act(const std::string& command, const std::string& ready,
                          const std::string& act, const std::string& log);
// The ACT_TO_EXIT_MS of run_and_act's output, or -1.
long act_to_exit_ms(const std::string& output);

// How many times `needle` occurs in `text` (overlaps counted).
std::size_t count_of(const std::string& text, const std::string& needle);

// The one-line error loading `path` into a fresh ConvDae and Adam gives ("" when it loads).
std::string checkpoint_load_error(const std::string& path);

// `mpirun` with the flags our tests need on any machine: as root, and more ranks than cores.
std::string mpirun(int ranks);

// The data file the end-to-end suites train on: 400 training and 40 test images, written to
// `path` (returned).
std::string write_small_data_file(const std::string& path);
// A checkpoint of `model` at `step` as one rank writes it (fresh Adam moments), with
// `config_text` as its config attribute: for tests that need a checkpoint, not a training run.
void write_model_checkpoint(const std::string& path, Denoiser& model,
                            const std::string& config_text, std::int64_t step = 5);
// Every parameter and both of its Adam moments in a checkpoint of the conv model, in one vector:
// what two runs that must be bit-identical compare.
std::vector<float> checkpoint_values(const std::string& checkpoint);

// |got - expected| / |expected| (Euclidean norms), on the CPU whatever the tensors' devices.
double relative_difference(const torch::Tensor& got, const torch::Tensor& expected);

// Two models of config.model with the same initial weights (the same on every rank: a fixed
// seed), on `device`.
std::pair<ModelPtr, ModelPtr> twin_models(const Config& config, torch::Device device);

}  // namespace dae::testing
