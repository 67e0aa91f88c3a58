// defines: dae::Config (every option with its default), dae::parse_config, dae::describe_config
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dae {

// The whole configuration of a run. Defaults live here and nowhere else; `--help` prints them.
struct Config {
  std::string config_file;               // INI file the options were read from ("" if none)
  std::string data;                      // HDF5 data file made by dae_prepare (required)
  std::string run_dir = "runs/default";  // logs, summary.json, checkpoints, evaluation
  long steps = 10000;                    // optimizer steps
  long batch_size = 50;                  // images per rank per step
  double lr = 0.01;                      // Adam learning rate
  // Adam's first full-size steps kill most ReLU units of the seed network (README, "Keeping the
  // seed network alive"); a warm-up keeps them. configs/seed.ini sets 0 to stay faithful.
  long lr_warmup = 500;                  // steps over which the rate rises linearly to lr
  // After the warm-up: constant, or a cosine from lr down to lr * lr_floor at the last step.
  // Cosine to 0 and a clip at 0.02 won across seeds (README, "A recipe for every seed"); the
  // seed configs and configs/compare/*.ini set constant and 0 to stay as they were.
  std::string lr_schedule = "cosine";    // constant | cosine
  double lr_floor = 0.0;                 // cosine: the last step's rate, as a fraction of lr
  double adam_eps = 1e-8;                // Adam's epsilon (LibTorch's and TensorFlow's 1e-8)
  double clip_grad_norm = 0.02;          // largest L2 norm of the averaged gradient; 0: no clip
  std::string noise_type = "gaussian";   // gaussian | salt-pepper | mask (see noise.hpp)
  double noise = 0.3;                    // training corruption level (gaussian: c in x + c*N(0,1))
  long seed = 1234;                      // seeds initial weights, data order and noise
  long log_every = 100;                  // steps between progress lines
  long threads = 0;                      // LibTorch intra-op threads per rank; 0: cores / ranks
  std::string device = "auto";           // auto | cpu | cuda (the node-local rank picks the GPU)
  std::string backend = "auto";          // auto | mpi | nccl: how gradients are all-reduced
  bool share_gpus = false;               // allow more ranks on a node than it has GPUs
  bool profile = false;                  // print per-phase time per step at the end
  // auto: the conv model's CPU steps run dae's own kernels (fused_conv_dae.hpp), the rest
  // LibTorch's autograd; fused insists on the former, libtorch on the latter.
  std::string kernels = "auto";          // auto | fused | libtorch
  // bf16: the forward pass under LibTorch's bf16 autocast (weights, gradients and Adam in fp32).
  std::string precision = "fp32";        // fp32 | bf16
  bool cuda_graph = false;               // capture each GPU step in a CUDA graph (NCCL backend)
  std::string model = "conv";            // conv (the seed's) | mlp (fully connected, same size)
  std::string init = "xavier";           // xavier | truncated-normal (the seed's) | torch
  double init_bias = 0.0;                // xavier, truncated-normal: initial biases
  // The seed's ReLU output can die (all outputs 0, loss stuck at mean(x^2)) under Adam at lr 0.01;
  // a linear output trains reliably, so it is the default and configs/seed.ini asks for relu.
  std::string output_activation = "none";  // relu (the seed's) | sigmoid | none
  std::vector<double> eval_noise = {0.0, 0.3, 0.5, 0.7, 0.9, 1.0};  // test-set noise sweep
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
inline constexpr double kMaxNoiseLevel = 100;       // gaussian c (pixels are in [0, 1])
inline constexpr std::uint64_t kMaxConfigFileBytes = 1 << 20;

// Thrown for --help: the caller prints `text` and exits 0.
struct HelpRequested {
  std::string text;
};

// Reads `--config FILE` (INI, `key = value`, no sections) and the command line; the command
// line wins. Validates every value once. Throws dae::Error with one line naming the option and
// the problem, or HelpRequested.
Config parse_config(int argc, const char* const* argv);

// The effective configuration as an aligned two-column table (rank 0 prints it at start and
// checkpoints store it).
std::string describe_config(const Config& config);

}  // namespace dae
