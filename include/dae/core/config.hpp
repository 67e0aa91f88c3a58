// defines: dae::Config (every option with its default), the enum options (dae::name_of,
//          dae::parse_enum), dae::ModelOptions, dae::parse_config, dae::describe_config,
//          dae::described_config_rows, dae::config_from_description, dae::evaluation_config
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dae {

// The enum options, parsed once (parse_config) and compared as enums everywhere after. Each has
// one table of names (EnumNames below): --help, parsing, the printout and checkpoints use it.
enum class DeviceKind { kAuto, kCpu, kCuda };     // auto: cuda when built with it and GPUs exist
enum class BackendKind { kAuto, kMpi, kNccl };    // how gradients are all-reduced
enum class ModelKind { kConv, kMlp };             // the seed's conv network | fully connected
enum class InitKind { kXavier, kTruncatedNormal, kTorch };
enum class NoiseType { kGaussian, kSaltPepper, kMask };  // see data/noise.hpp
enum class KernelChoice { kAuto, kFused, kLibtorch };    // who runs the CPU step
enum class Precision { kFp32, kBf16 };
enum class Activation { kNone, kRelu, kSigmoid };        // the last layer's
enum class LrSchedule { kConstant, kCosine };            // after the warm-up

// Throws dae::Error("config: " + message): the one form of every configuration error.
[[noreturn]] void throw_config_error(const std::string& message);

template <typename E>
struct EnumName {
  E value;
  const char* name;
};
template <typename E>
struct EnumNames;  // static constexpr EnumName<E> all[]: every value with its option text
template <>
struct EnumNames<DeviceKind> {
  static constexpr EnumName<DeviceKind> all[] = {
      {DeviceKind::kAuto, "auto"}, {DeviceKind::kCpu, "cpu"}, {DeviceKind::kCuda, "cuda"}};
};
template <>
struct EnumNames<BackendKind> {
  static constexpr EnumName<BackendKind> all[] = {
      {BackendKind::kAuto, "auto"}, {BackendKind::kMpi, "mpi"}, {BackendKind::kNccl, "nccl"}};
};
template <>
struct EnumNames<ModelKind> {
  static constexpr EnumName<ModelKind> all[] = {{ModelKind::kConv, "conv"},
                                                {ModelKind::kMlp, "mlp"}};
};
template <>
struct EnumNames<InitKind> {
  static constexpr EnumName<InitKind> all[] = {{InitKind::kXavier, "xavier"},
                                               {InitKind::kTruncatedNormal, "truncated-normal"},
                                               {InitKind::kTorch, "torch"}};
};
template <>
struct EnumNames<NoiseType> {
  static constexpr EnumName<NoiseType> all[] = {{NoiseType::kGaussian, "gaussian"},
                                                {NoiseType::kSaltPepper, "salt-pepper"},
                                                {NoiseType::kMask, "mask"}};
};
template <>
struct EnumNames<KernelChoice> {
  static constexpr EnumName<KernelChoice> all[] = {{KernelChoice::kAuto, "auto"},
                                                   {KernelChoice::kFused, "fused"},
                                                   {KernelChoice::kLibtorch, "libtorch"}};
};
template <>
struct EnumNames<Precision> {
  static constexpr EnumName<Precision> all[] = {{Precision::kFp32, "fp32"},
                                                {Precision::kBf16, "bf16"}};
};
template <>
struct EnumNames<Activation> {
  static constexpr EnumName<Activation> all[] = {
      {Activation::kRelu, "relu"}, {Activation::kSigmoid, "sigmoid"}, {Activation::kNone, "none"}};
};

template <>
struct EnumNames<LrSchedule> {
  static constexpr EnumName<LrSchedule> all[] = {{LrSchedule::kConstant, "constant"},
                                                 {LrSchedule::kCosine, "cosine"}};
};

// The option text of an enum value ("truncated-normal").
template <typename E>
std::string name_of(E value) {
  for (const auto& entry : EnumNames<E>::all)
    if (entry.value == value) return entry.name;
  return "?";
}
// The value named `text`; throws dae::Error "config: <option>: 'text' is not one of a, b, c".
template <typename E>
E parse_enum(const std::string& option, const std::string& text) {
  std::string names;
  for (const auto& entry : EnumNames<E>::all) {
    if (text == entry.name) return entry.value;
    names += std::string(names.empty() ? "" : ", ") + entry.name;
  }
  throw_config_error(option + ": '" + text + "' is not one of " + names);
}
// What makes the network (model/): its kind, initialisation and output.
struct ModelOptions {
  ModelKind kind = ModelKind::kConv;
  InitKind init = InitKind::kXavier;
  double init_bias = 0.0;  // xavier, truncated-normal: initial biases
  // The seed's ReLU output can die (all outputs 0, loss stuck at mean(x^2)) under Adam at lr
  // 0.01; a linear output trains reliably, so it is the default and configs/seed.ini asks for
  // relu.
  Activation output_activation = Activation::kNone;
};

// The whole configuration of a run. Defaults live here and nowhere else; the option table in
// config.cpp names each field once, with its help text and bounds.
struct Config {
  std::string config_file;               // INI file the options were read from ("" if none)
  std::string data;                      // HDF5 data file made by dae_prepare (required)
  std::string run_dir = "runs/default";  // logs, summary.json, checkpoints, evaluation
  long steps = 10000;                    // optimizer steps
  long batch_size = 50;                  // images per rank per step
  // World-size invariant mode (data/virtual_shards.hpp; README "World-size invariant training"):
  // > 0 fixes the images per step over all ranks, split over virtual_shards virtual shards, and
  // batch_size becomes global_batch_size / ranks. 0: per-rank mode, batch_size per rank.
  long global_batch_size = 0;            // images per step over all ranks; 0: per-rank mode
  long virtual_shards = 8;               // with global_batch_size: a multiple of the ranks
  bool batch_size_set = false;           // batch-size given (must then match global / ranks)
  double lr = 0.01;                      // Adam learning rate
  // Adam's first full-size steps kill most ReLU units of the seed network (README, "Keeping the
  // seed network alive"); a warm-up keeps them. configs/seed.ini sets 0 to stay faithful.
  long lr_warmup = 500;                  // steps over which the rate rises linearly to lr
  // After the warm-up: constant, or a cosine from lr down to lr * lr_floor at the last step.
  // Cosine and clipping keep every seed of the main job alive (README, "A recipe for every
  // seed"); configs/seed*.ini ask for constant and no clipping, as the seed trained.
  LrSchedule lr_schedule = LrSchedule::kCosine;
  double lr_floor = 0.0;                 // cosine: the last step's rate, as a fraction of lr
  double adam_eps = 1e-8;                // Adam's epsilon (LibTorch's and TensorFlow's 1e-8)
  double adam_beta1 = 0.9;               // decay of Adam's first moment (LibTorch's and TF's)
  double adam_beta2 = 0.999;             // decay of Adam's second moment (LibTorch's and TF's)
  double clip_grad_norm = 0.02;          // largest L2 norm of the averaged gradient; 0: no clip
  // Dead ReLU channels given fresh weights (train/recycle.hpp): every recycle_dead_every steps
  // up to the fraction recycle_dead_until of the run, so revived channels still train after.
  long recycle_dead_every = 0;           // steps between recyclings; 0: never
  double recycle_dead_until = 0.5;       // the last recycling's step, as a fraction of steps
  NoiseType noise_type = NoiseType::kGaussian;
  double noise = 0.3;                    // training corruption level (gaussian: c in x + c*N(0,1))
  long seed = 1234;                      // seeds initial weights, data order and noise
  long log_every = 100;                  // steps between progress lines
  long threads = 0;                      // LibTorch intra-op threads per rank; 0: cores / ranks
  DeviceKind device = DeviceKind::kAuto;     // the node-local rank picks the GPU
  BackendKind backend = BackendKind::kAuto;  // how gradients are all-reduced
  bool share_gpus = false;               // allow more ranks on a node than it has GPUs
  bool profile = false;                  // print per-phase time per step at the end
  // auto: the conv model's CPU steps run dae's own kernels (model/fused_conv_dae.hpp), the rest
  // LibTorch's autograd; fused insists on the former, libtorch on the latter.
  KernelChoice kernels = KernelChoice::kAuto;
  // bf16: the forward pass under LibTorch's bf16 autocast (weights, gradients and Adam in fp32).
  Precision precision = Precision::kFp32;
  bool cuda_graph = false;               // capture each GPU step in a CUDA graph (NCCL backend)
  ModelOptions model;
  // Test-set noise sweep; parse_config adds 0 and the training noise and sorts it.
  std::vector<double> eval_noise = {0.0, 0.3, 0.5, 0.7, 0.9, 1.0};
  long eval_batch = 500;                 // test images per forward pass during evaluation
  long eval_every = 0;                   // steps between evaluations; 0: only at the end
  bool eval_only = false;                // evaluate the --resume checkpoint, train nothing
  long checkpoint_every = 1000;          // steps between checkpoints; 0: only at the end
  long keep_checkpoints = 3;             // newest checkpoint files kept in RUN_DIR/checkpoints
  std::string resume;                    // "" (start fresh) | auto | PATH of a checkpoint
  // A rank that waits this long in a collective ends the job (a peer is stopped, dead or cut
  // off); like NCCL's watchdog and PyTorch's process-group timeout. 0: wait forever.
  double collective_timeout_s = 300;     // seconds
};

// Bounds that only a mistake or an attack exceeds; each is refused with one line.
inline constexpr long kMaxThreads = 1024;           // intra-op threads per rank
inline constexpr long kMaxBatchSize = 1L << 20;     // images per rank per step or eval pass
inline constexpr long kMaxVirtualShards = 4096;     // each is a gathered gradient per step
inline constexpr double kMaxNoiseLevel = 100;       // gaussian c (pixels are in [0, 1])
// A beta of 1 never forgets and divides Adam's bias correction 1 - beta^t by zero.
inline constexpr double kMaxAdamBeta = 0.999999;
inline constexpr std::uint64_t kMaxConfigFileBytes = 1 << 20;

// Thrown for the options that ask instead of train: the caller prints `text` and exits 0.
// --help: the options. --print-exit-codes: the exit codes scripts act on, NAME=VALUE lines
// (preempted=<kExitPreempted>). --print-run-dir: the run directory that the other options name,
// after they all passed validation. Scripts ask these instead of reading the source or the log.
struct InfoRequested {
  std::string text;
};

// Reads `--config FILE` (INI, `key = value`, no sections) and the command line; the command
// line wins. Validates every value once. Throws dae::Error with one line naming the option and
// the problem, or InfoRequested.
Config parse_config(int argc, const char* const* argv);

// The effective configuration as an aligned two-column table (rank 0 prints it at start and
// checkpoints store it).
std::string describe_config(const Config& config);
// The rows of a describe_config() text (a checkpoint's config attribute) as option -> value.
std::map<std::string, std::string> described_config_rows(const std::string& text);
// The Config that describe_config() showed as `text` (a checkpoint's config attribute): each row
// parsed and checked by its option's own parser, so describe_config() of the result is `text`
// again; defaults where the text has no row. Rows of options this version does not know are
// ignored. Throws dae::Error "config: <option>: ..." for a value its option refuses.
Config config_from_description(const std::string& text);
// `--eval-only`: `trained` (the configuration the checkpoint was trained with) with the
// evaluating command's own options: the data whose test split is evaluated, run-dir, eval-noise
// (with 0 and the trained noise added), eval-batch, and how this job runs (threads, device,
// backend, kernels, ...). Checked as parse_config checks a command line (eval-noise levels for
// the trained noise type).
Config evaluation_config(const Config& trained, const Config& command);

}  // namespace dae
