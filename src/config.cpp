#include "dae/config.hpp"

#include <boost/program_options.hpp>

#include <cmath>
#include <regex>
#include <iomanip>
#include <sstream>

#include "dae/error.hpp"
#include "dae/files.hpp"

namespace dae {

namespace po = boost::program_options;

namespace {

// Boost.Program_options (1.74) builds its error messages by replacing %name% placeholders until
// none is left: text that quotes such a placeholder never finishes. Found by fuzzing; refused
// before Boost sees it.
void refuse_placeholders(const std::string& text, const std::string& where) {
  static const std::regex kPlaceholder("%[A-Za-z_]+%");
  if (std::regex_search(text, kPlaceholder))
    throw Error("config: " + where + ": '%name%' sequences are not allowed");
}

std::vector<double> parse_noise_list(const std::string& text) {
  std::string spaced = text;
  for (char& c : spaced)
    if (c == ',') c = ' ';
  std::istringstream in(spaced);
  std::vector<double> levels;
  std::string token;
  while (in >> token) {
    std::size_t used = 0;
    double level = 0;
    try {
      level = std::stod(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != token.size() || !std::isfinite(level))
      throw Error("config: eval-noise: '" + token + "' is not a finite number");
    if (level < 0 || level > kMaxNoiseLevel)
      throw Error("config: eval-noise: levels must be >= 0 and at most " +
                  json_number(kMaxNoiseLevel) + " (got " + token + ")");
    levels.push_back(level);
  }
  if (levels.empty()) throw Error("config: eval-noise: needs at least one noise level");
  return levels;
}

std::string join(const std::vector<double>& values) {
  std::ostringstream out;
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

po::options_description describe_options(Config& config, std::string& eval_noise) {
  const Config defaults;
  po::options_description options("dae_dist options (INI keys are the same names without --)");
  options.add_options()
      ("help", "print this help and exit")
      ("config", po::value(&config.config_file), "INI file of options; the command line wins")
      ("data", po::value(&config.data), "HDF5 data file made by dae_prepare (required)")
      ("run-dir", po::value(&config.run_dir)->default_value(defaults.run_dir),
       "directory for logs, summary.json, checkpoints and evaluation")
      ("steps", po::value(&config.steps)->default_value(defaults.steps), "optimizer steps")
      ("batch-size", po::value(&config.batch_size)->default_value(defaults.batch_size),
       "images per rank per step")
      ("lr", po::value(&config.lr)->default_value(defaults.lr), "Adam learning rate")
      ("lr-warmup", po::value(&config.lr_warmup)->default_value(defaults.lr_warmup),
       "steps over which the learning rate rises linearly from lr/warmup to lr (0: none)")
      ("lr-schedule", po::value(&config.lr_schedule)->default_value(defaults.lr_schedule),
       "after the warm-up: constant (lr) | cosine (from lr down to lr * lr-floor at the last "
       "step)")
      ("lr-floor", po::value(&config.lr_floor)->default_value(defaults.lr_floor),
       "with lr-schedule = cosine: the last step's rate as a fraction of lr, in [0, 1]")
      ("adam-eps", po::value(&config.adam_eps)->default_value(defaults.adam_eps),
       "Adam's epsilon (added to the root of the second moment)")
      ("clip-grad-norm", po::value(&config.clip_grad_norm)->default_value(defaults.clip_grad_norm),
       "scale the averaged gradient down to this L2 norm when it is larger (0: no clipping)")
      ("noise", po::value(&config.noise)->default_value(defaults.noise),
       "training noise coefficient c in x + c*N(0,1)")
      ("seed", po::value(&config.seed)->default_value(defaults.seed),
       "seed of initial weights, data order and noise")
      ("log-every", po::value(&config.log_every)->default_value(defaults.log_every),
       "steps between progress lines")
      ("threads", po::value(&config.threads)->default_value(defaults.threads),
       "intra-op threads per rank; 0 = cores on the node / ranks on the node")
      ("model", po::value(&config.model)->default_value(defaults.model),
       "conv (the seed's network) | mlp (fully connected, 784-16-784)")
      ("init", po::value(&config.init)->default_value(defaults.init),
       "initial weights: xavier (Glorot uniform) | truncated-normal (N(0, 0.1^2) cut at 2 "
       "standard deviations: the seed's TensorFlow tutorial helpers) | torch (LibTorch's)")
      ("init-bias", po::value(&config.init_bias)->default_value(defaults.init_bias),
       "with init = xavier or truncated-normal: the biases' initial value (the seed's helpers: "
       "0.1, which keeps ReLU units active early on)")
      ("noise-type", po::value(&config.noise_type)->default_value(defaults.noise_type),
       "gaussian: x + c*N(0,1) | salt-pepper: a fraction c of pixels set to 0 or 1 | "
       "mask: a fraction c of pixels blanked (c = 0.67 keeps a third)")
      ("device", po::value(&config.device)->default_value(defaults.device),
       "auto (cuda when built with it and the node has GPUs) | cpu | cuda")
      ("backend", po::value(&config.backend)->default_value(defaults.backend),
       "auto (nccl on GPUs when built with it) | mpi | nccl")
      ("share-gpus", po::bool_switch(&config.share_gpus),
       "allow more ranks on a node than GPUs (MPI backend only)")
      ("profile", po::bool_switch(&config.profile),
       "print the time per step of each phase (batch, noise, forward, backward, all-reduce, "
       "optimizer) at the end")
      ("kernels", po::value(&config.kernels)->default_value(defaults.kernels),
       "auto (dae's fused kernels for the conv model on an AVX2 or AVX-512 CPU, else "
       "LibTorch's) | fused | libtorch")
      ("precision", po::value(&config.precision)->default_value(defaults.precision),
       "fp32 | bf16 (forward pass under bf16 autocast; weights, gradients and Adam stay fp32; "
       "LibTorch's kernels)")
      ("cuda-graph", po::bool_switch(&config.cuda_graph),
       "capture each training step on the GPU in a CUDA graph and replay it (device = cuda, "
       "backend = nccl)")
      ("output-activation",
       po::value(&config.output_activation)->default_value(defaults.output_activation),
       "last layer's activation: relu (the seed's) | sigmoid | none")
      ("eval-noise", po::value(&eval_noise)->default_value(join(defaults.eval_noise)),
       "comma-separated test noise levels for the final evaluation")
      ("eval-batch", po::value(&config.eval_batch)->default_value(defaults.eval_batch),
       "test images per forward pass during evaluation")
      ("eval-every", po::value(&config.eval_every)->default_value(defaults.eval_every),
       "steps between evaluations written to RUN_DIR/eval (0: only at the end)")
      ("eval-only", po::bool_switch(&config.eval_only),
       "evaluate the checkpoint given by --resume and exit, without training")
      ("checkpoint-every",
       po::value(&config.checkpoint_every)->default_value(defaults.checkpoint_every),
       "steps between checkpoints (0: only at the end and on SIGUSR1/SIGTERM)")
      ("keep-checkpoints",
       po::value(&config.keep_checkpoints)->default_value(defaults.keep_checkpoints),
       "newest checkpoints kept in RUN_DIR/checkpoints")
      ("resume", po::value(&config.resume),
       "auto: continue from the newest valid checkpoint in RUN_DIR (fresh if none); "
       "PATH: from exactly that checkpoint")
      ("collective-timeout",
       po::value(&config.collective_timeout_s)->default_value(defaults.collective_timeout_s),
       "seconds a rank may wait for the others in a collective before it ends the job "
       "(a stopped, dead or unreachable rank); 0 = wait forever");
  return options;
}

void validate(const Config& config) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error("config: " + message);
  };
  // NaN passes every comparison below as false and infinity most of them: refused first.
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"lr", config.lr}, {"noise", config.noise},
        {"init-bias", config.init_bias}, {"collective-timeout", config.collective_timeout_s},
        {"lr-floor", config.lr_floor}, {"adam-eps", config.adam_eps},
        {"clip-grad-norm", config.clip_grad_norm}})
    require(std::isfinite(value), std::string(name) + ": must be a finite number");
  require(!config.data.empty(), "data: missing (give --data FILE or data = FILE in the config)");
  require(!config.run_dir.empty(), "run-dir: must not be empty");
  require(config.steps > 0, "steps: must be > 0 (got " + std::to_string(config.steps) + ")");
  require(config.batch_size > 0 && config.batch_size <= kMaxBatchSize,
          "batch-size: must be > 0 and at most " + std::to_string(kMaxBatchSize) + " (got " +
              std::to_string(config.batch_size) + ")");
  require(config.lr > 0, "lr: must be > 0");
  require(config.lr_warmup >= 0, "lr-warmup: must be >= 0");
  require(config.lr_schedule == "constant" || config.lr_schedule == "cosine",
          "lr-schedule: '" + config.lr_schedule + "' is not one of constant, cosine");
  require(config.lr_floor >= 0 && config.lr_floor <= 1, "lr-floor: must be in [0, 1]");
  require(config.adam_eps > 0, "adam-eps: must be > 0");
  require(config.clip_grad_norm >= 0, "clip-grad-norm: must be >= 0 (0: off)");
  require(config.noise >= 0 && config.noise <= kMaxNoiseLevel,
          "noise: must be >= 0 and at most " + json_number(kMaxNoiseLevel));
  require(config.log_every > 0, "log-every: must be > 0");
  require(config.threads >= 0 && config.threads <= kMaxThreads,
          "threads: must be >= 0 and at most " + std::to_string(kMaxThreads) +
              " (0 picks cores / ranks; got " + std::to_string(config.threads) + ")");
  require(config.collective_timeout_s >= 0, "collective-timeout: must be >= 0 (0: off)");
  require(config.device == "auto" || config.device == "cpu" || config.device == "cuda",
          "device: '" + config.device + "' is not one of auto, cpu, cuda");
  require(config.backend == "auto" || config.backend == "mpi" || config.backend == "nccl",
          "backend: '" + config.backend + "' is not one of auto, mpi, nccl");
  require(config.kernels == "auto" || config.kernels == "fused" || config.kernels == "libtorch",
          "kernels: '" + config.kernels + "' is not one of auto, fused, libtorch");
  require(config.precision == "fp32" || config.precision == "bf16",
          "precision: '" + config.precision + "' is not one of fp32, bf16");
  require(!config.cuda_graph || config.device != "cpu",
          "cuda-graph: needs a GPU, but device = cpu");
  require(!config.cuda_graph || config.backend != "mpi",
          "cuda-graph: needs backend = nccl or auto: the MPI backend's all-reduce goes through "
          "host memory, which a CUDA graph cannot capture");
  require(config.eval_batch > 0 && config.eval_batch <= kMaxBatchSize,
          "eval-batch: must be > 0 and at most " + std::to_string(kMaxBatchSize));
  require(config.eval_every >= 0, "eval-every: must be >= 0");
  require(!config.eval_only || !config.resume.empty(),
          "eval-only: needs --resume auto or --resume PATH (the checkpoint to evaluate)");
  require(config.model == "conv" || config.model == "mlp",
          "model: '" + config.model + "' is not one of conv, mlp");
  require(config.init == "xavier" || config.init == "truncated-normal" || config.init == "torch",
          "init: '" + config.init + "' is not one of xavier, truncated-normal, torch");
  const auto& type = config.noise_type;
  require(type == "gaussian" || type == "salt-pepper" || type == "mask",
          "noise-type: '" + type + "' is not one of gaussian, salt-pepper, mask");
  if (type != "gaussian") {
    require(config.noise <= 1, "noise: for " + type + " it is a fraction of pixels, at most 1");
    for (double level : config.eval_noise)
      require(level <= 1, "eval-noise: for " + type + " levels are fractions of pixels, at most 1");
  }
  require(config.checkpoint_every >= 0, "checkpoint-every: must be >= 0");
  require(config.keep_checkpoints >= 1, "keep-checkpoints: must be >= 1");
  const auto& activation = config.output_activation;
  require(activation == "relu" || activation == "sigmoid" || activation == "none",
          "output-activation: '" + activation + "' is not one of relu, sigmoid, none");
}

}  // namespace

Config parse_config(int argc, const char* const* argv) {
  Config config;
  std::string eval_noise;
  const po::options_description options = describe_options(config, eval_noise);
  for (int i = 1; i < argc; ++i) refuse_placeholders(argv[i], "command line");
  try {
    po::variables_map values;
    // Stored first, so the command line wins over the file for every key.
    po::store(po::parse_command_line(argc, argv, options), values);
    if (values.count("help")) {
      std::ostringstream text;
      text << options;
      throw HelpRequested{text.str()};
    }
    if (values.count("config")) {
      const std::string path = values["config"].as<std::string>();
      // A directory reads as empty and /dev/zero or a FIFO never ends: regular files only.
      const std::string text = read_small_regular_file(path, kMaxConfigFileBytes, "config");
      refuse_placeholders(text, path);
      std::istringstream contents(text);
      po::store(po::parse_config_file(contents, options), values);
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw Error(std::string("config: ") + error.what());
  }
  config.eval_noise = parse_noise_list(eval_noise);
  validate(config);
  return config;
}

std::string describe_config(const Config& config) {
  std::ostringstream out;
  auto row = [&out](const std::string& key, const auto& value) {
    out << "  " << std::left << std::setw(18) << key << " " << value << "\n";
  };
  row("config", config.config_file.empty() ? "(none)" : config.config_file);
  row("data", config.data);
  row("run-dir", config.run_dir);
  row("steps", config.steps);
  row("batch-size", config.batch_size);
  row("lr", config.lr);
  row("lr-warmup", config.lr_warmup);
  row("lr-schedule", config.lr_schedule);
  row("lr-floor", config.lr_floor);
  row("adam-eps", config.adam_eps);
  row("clip-grad-norm", config.clip_grad_norm);
  row("noise", config.noise);
  row("seed", config.seed);
  row("log-every", config.log_every);
  row("threads", config.threads);
  row("device", config.device);
  row("backend", config.backend);
  row("share-gpus", config.share_gpus ? "yes" : "no");
  row("profile", config.profile ? "yes" : "no");
  row("model", config.model);
  row("init", config.init);
  row("init-bias", config.init_bias);
  row("noise-type", config.noise_type);
  row("kernels", config.kernels);
  row("precision", config.precision);
  row("cuda-graph", config.cuda_graph ? "yes" : "no");
  row("output-activation", config.output_activation);
  row("eval-noise", join(config.eval_noise));
  row("eval-batch", config.eval_batch);
  row("eval-every", config.eval_every);
  row("eval-only", config.eval_only ? "yes" : "no");
  row("checkpoint-every", config.checkpoint_every);
  row("keep-checkpoints", config.keep_checkpoints);
  row("resume", config.resume.empty() ? "(no)" : config.resume);
  row("collective-timeout", config.collective_timeout_s);
  return out.str();
}

}  // namespace dae
