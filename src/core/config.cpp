#include "dae/core/config.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <regex>
#include <sstream>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/core/signals.hpp"

namespace dae {

namespace po = boost::program_options;

void throw_config_error(const std::string& message) { throw Error("config: " + message); }

namespace {

// Boost.Program_options (1.74) builds its error messages by replacing %name% placeholders until
// none is left: text that quotes such a placeholder never finishes. Found by fuzzing; refused
// before Boost sees it.
void refuse_placeholders(const std::string& text, const std::string& where) {
  static const std::regex kPlaceholder("%[A-Za-z_]+%");
  if (std::regex_search(text, kPlaceholder))
    throw_config_error(where + ": '%name%' sequences are not allowed");
}

// As the printout shows a value (6 significant digits: "0.01", "300")...
std::string number_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// ...and as an error message quotes a bound or a value: exactly, up to 15 digits ("1048576").
std::string exact_text(double value) {
  std::ostringstream out;
  out << std::setprecision(15) << value;
  return out.str();
}

// A number's admissible range: above `lower` (or at it, unless `open`), at most `upper`.
struct Range {
  double lower = -std::numeric_limits<double>::infinity();
  bool open = false;
  double upper = std::numeric_limits<double>::infinity();
};
constexpr double kNone = std::numeric_limits<double>::infinity();
Range at_least(double lower, double upper = kNone) { return {lower, false, upper}; }
Range above(double lower, double upper = kNone) { return {lower, true, upper}; }

void require_in(const std::string& name, double value, const Range& range) {
  // NaN passes every comparison as false and infinity most of them: refused first.
  if (!std::isfinite(value)) throw_config_error(name + ": must be a finite number");
  if ((range.open ? value > range.lower : value >= range.lower) && value <= range.upper) return;
  std::string message = name + ": must be " + (range.open ? "> " : ">= ") +
                        exact_text(range.lower);
  if (std::isfinite(range.upper)) message += " and at most " + exact_text(range.upper);
  throw_config_error(message + " (got " + exact_text(value) + ")");
}

// All of `text` as a number by `convert` (std::stol, std::stod); else one line saying it is not
// `kind`.
template <typename Convert>
auto parse_number(const std::string& name, const std::string& text, const char* kind,
                  Convert convert) {
  std::size_t used = 0;
  decltype(convert(text, &used)) value{};
  try {
    value = convert(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw_config_error(name + ": '" + text + "' is not " + kind);
  return value;
}

long parse_integer(const std::string& name, const std::string& text) {
  return parse_number(name, text, "a whole number",
                      [](const std::string& t, std::size_t* used) { return std::stol(t, used); });
}

double parse_real(const std::string& name, const std::string& text) {
  return parse_number(name, text, "a number",
                      [](const std::string& t, std::size_t* used) { return std::stod(t, used); });
}

bool parse_switch(const std::string& name, const std::string& text) {
  for (const char* yes : {"true", "yes", "on", "1"})
    if (text == yes) return true;
  for (const char* no : {"false", "no", "off", "0"})
    if (text == no) return false;
  throw_config_error(name + ": '" + text + "' is not one of true, false (or yes, no, on, off)");
}

std::vector<double> parse_noise_list(const std::string& text) {
  std::string spaced = text;
  for (char& c : spaced)
    if (c == ',') c = ' ';
  std::istringstream in(spaced);
  std::vector<double> levels;
  std::string token;
  while (in >> token) {
    const double level = parse_real("eval-noise", token);
    if (!std::isfinite(level))
      throw_config_error("eval-noise: '" + token + "' is not a finite number");
    if (level < 0 || level > kMaxNoiseLevel)
      throw_config_error("eval-noise: levels must be >= 0 and at most " +
                         json_number(kMaxNoiseLevel) + " (got " + token + ")");
    levels.push_back(level);
  }
  if (levels.empty()) throw_config_error("eval-noise: needs at least one noise level");
  return levels;
}

std::string join(const std::vector<double>& values) {
  std::ostringstream out;
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

template <typename E>
std::string choices_of() {
  std::string names;
  for (const auto& entry : EnumNames<E>::all)
    names += std::string(names.empty() ? "" : " | ") + entry.name;
  return names;
}

// One option: its name (the command line's --name and the INI key), help, and how its text
// becomes a field of Config (parsed, checked against its bounds) and is shown again. The table
// below is the only list of options: --help, parsing, validation, describe_config() (the rank-0
// printout and the checkpoints' config attribute) all walk it.
struct Option {
  std::string name;
  std::string help;
  std::function<void(Config&, const std::string&)> set;  // parse and check one value
  std::function<std::string(const Config&)> show;        // the value as text
  bool is_switch = false;   // --name alone means true
  bool has_default = true;  // shown as (=default) in --help
  // Whether describe_config() lists it (world-size invariant mode's options only in that mode:
  // per-rank runs print, and checkpoint, the configuration text they always did).
  std::function<bool(const Config&)> listed = [](const Config&) { return true; };
};

bool invariant_mode(const Config& c) { return c.global_batch_size > 0; }

Option only_when(Option option, bool (*listed)(const Config&)) {
  option.listed = listed;
  return option;
}

// Where a field lives: Config itself, or one of its sub-configs.
Config& whole(Config& c) { return c; }
const Config& whole_of(const Config& c) { return c; }
ModelOptions& model_part(Config& c) { return c.model; }
const ModelOptions& model_of(const Config& c) { return c.model; }

Option text(const char* name, std::string Config::*field, const char* help,
            bool has_default = true) {
  return {name, help, [field](Config& c, const std::string& v) { c.*field = v; },
          [field](const Config& c) { return c.*field; }, false, has_default};
}

Option integer(const char* name, long Config::*field, Range range, const char* help) {
  return {name, help,
          [=](Config& c, const std::string& v) {
            c.*field = parse_integer(name, v);
            require_in(name, static_cast<double>(c.*field), range);
          },
          [field](const Config& c) { return std::to_string(c.*field); }};
}

template <typename Owner>
Option real(const char* name, double Owner::*field, Range range, const char* help,
            Owner& (*part)(Config&), const Owner& (*read)(const Config&)) {
  return {name, help,
          [=](Config& c, const std::string& v) {
            part(c).*field = parse_real(name, v);
            require_in(name, part(c).*field, range);
          },
          [=](const Config& c) { return number_text(read(c).*field); }};
}

Option real(const char* name, double Config::*field, Range range, const char* help) {
  return real(name, field, range, help, whole, whole_of);
}

Option flag(const char* name, bool Config::*field, const char* help) {
  return {name, help, [=](Config& c, const std::string& v) { c.*field = parse_switch(name, v); },
          [field](const Config& c) { return std::string(c.*field ? "yes" : "no"); }, true};
}

template <typename E, typename Owner>
Option choice(const char* name, E Owner::*field, const std::string& help,
              Owner& (*part)(Config&), const Owner& (*read)(const Config&)) {
  return {name, help + " (" + choices_of<E>() + ")",
          [=](Config& c, const std::string& v) { part(c).*field = parse_enum<E>(name, v); },
          [=](const Config& c) { return name_of(read(c).*field); }};
}

template <typename E>
Option choice(const char* name, E Config::*field, const std::string& help) {
  return choice(name, field, help, whole, whole_of);
}

const std::vector<Option>& options_table() {
  static const std::vector<Option> table = {
      text("data", &Config::data, "HDF5 data file made by dae_prepare (required)", false),
      text("run-dir", &Config::run_dir,
           "directory for logs, summary.json, checkpoints and evaluation"),
      integer("steps", &Config::steps, above(0), "optimizer steps"),
      integer("batch-size", &Config::batch_size, above(0, kMaxBatchSize),
              "images per rank per step (with global-batch-size: global-batch-size / ranks)"),
      only_when(integer("global-batch-size", &Config::global_batch_size,
                        at_least(0, kMaxBatchSize),
                        "images per step over all ranks: the world-size invariant mode (the same "
                        "bits at any number of ranks dividing virtual-shards); 0 = per-rank mode "
                        "(batch-size per rank)"),
                invariant_mode),
      only_when(integer("virtual-shards", &Config::virtual_shards, at_least(1, kMaxVirtualShards),
                        "with global-batch-size: fixed data shards, each global-batch-size / "
                        "virtual-shards images a step, with its own order and noise; a multiple "
                        "of the number of ranks"),
                invariant_mode),
      real("lr", &Config::lr, above(0), "Adam learning rate"),
      integer("lr-warmup", &Config::lr_warmup, at_least(0),
              "steps over which the learning rate rises linearly from lr/warmup to lr (0: none)"),
      choice("lr-schedule", &Config::lr_schedule,
             "after the warm-up: constant (lr), or cosine (from lr down to lr * lr-floor at the "
             "last step)"),
      real("lr-floor", &Config::lr_floor, at_least(0, 1),
           "with lr-schedule = cosine: the last step's rate as a fraction of lr"),
      real("adam-eps", &Config::adam_eps, above(0),
           "Adam's epsilon (added to the root of the second moment)"),
      real("adam-beta1", &Config::adam_beta1, at_least(0, kMaxAdamBeta),
           "decay rate of Adam's first moment, the running mean of the gradient"),
      real("adam-beta2", &Config::adam_beta2, at_least(0, kMaxAdamBeta),
           "decay rate of Adam's second moment, the running mean of the squared gradient"),
      real("clip-grad-norm", &Config::clip_grad_norm, at_least(0),
           "scale the averaged gradient down to this L2 norm when it is larger (0: no clipping)"),
      integer("recycle-dead-every", &Config::recycle_dead_every, at_least(0),
              "every this many steps, ReLU channels that are 0 for every training image of the "
              "step (on every rank) get fresh incoming weights and zero outgoing ones (0: never)"),
      real("recycle-dead-until", &Config::recycle_dead_until, at_least(0, 1),
           "with recycle-dead-every: recycle up to this fraction of the steps, no later, so "
           "that recycled channels train before the end"),
      real("noise", &Config::noise, at_least(0, kMaxNoiseLevel),
           "training noise coefficient c in x + c*N(0,1)"),
      integer("seed", &Config::seed, {}, "seed of initial weights, data order and noise"),
      integer("log-every", &Config::log_every, above(0), "steps between progress lines"),
      integer("threads", &Config::threads, at_least(0, kMaxThreads),
              "intra-op threads per rank; 0 = cores on the node / ranks on the node"),
      choice("device", &Config::device,
             "where a rank computes; auto: cuda when built with it and the node has GPUs"),
      choice("backend", &Config::backend,
             "how gradients are all-reduced; auto: nccl on GPUs when built with it"),
      flag("share-gpus", &Config::share_gpus,
           "allow more ranks on a node than GPUs (MPI backend only)"),
      flag("profile", &Config::profile,
           "print the time per step of each phase (batch, noise, forward, backward, all-reduce, "
           "optimizer) at the end"),
      choice("model", &ModelOptions::kind,
             "conv: the seed's network; mlp: fully connected, 784-16-784", model_part, model_of),
      choice("init", &ModelOptions::init,
             "initial weights: xavier (Glorot uniform), truncated-normal (N(0, 0.1^2) cut at 2 "
             "standard deviations: the seed's TensorFlow tutorial helpers), torch (LibTorch's)",
             model_part, model_of),
      real("init-bias", &ModelOptions::init_bias, {},
           "with init = xavier or truncated-normal: the biases' initial value (the seed's "
           "helpers: 0.1, which keeps ReLU units active early on)",
           model_part, model_of),
      choice("noise-type", &Config::noise_type,
             "gaussian: x + c*N(0,1); salt-pepper: a fraction c of pixels set to 0 or 1; mask: a "
             "fraction c of pixels blanked (c = 0.67 keeps a third)"),
      choice("kernels", &Config::kernels,
             "auto: dae's fused kernels for the conv model on an AVX2 or AVX-512 CPU, else "
             "LibTorch's; fused insists on them; libtorch never uses them"),
      choice("precision", &Config::precision,
             "bf16: forward pass under bf16 autocast (weights, gradients and Adam stay fp32; "
             "LibTorch's kernels)"),
      flag("cuda-graph", &Config::cuda_graph,
           "capture each training step on the GPU in a CUDA graph and replay it (device = cuda, "
           "backend = nccl)"),
      choice("output-activation", &ModelOptions::output_activation,
             "last layer's activation (relu: the seed's)", model_part, model_of),
      {"eval-noise", "comma-separated test noise levels of every evaluation (0 and the training "
                     "noise are always added)",
       [](Config& c, const std::string& v) { c.eval_noise = parse_noise_list(v); },
       [](const Config& c) { return join(c.eval_noise); }},
      integer("eval-batch", &Config::eval_batch, above(0, kMaxBatchSize),
              "test images per forward pass during evaluation"),
      integer("eval-every", &Config::eval_every, at_least(0),
              "steps between evaluations written to RUN_DIR/eval (0: only at the end)"),
      flag("eval-only", &Config::eval_only,
           "evaluate the checkpoint given by --resume and exit, without training"),
      integer("checkpoint-every", &Config::checkpoint_every, at_least(0),
              "steps between checkpoints (0: only at the end and on SIGUSR1/SIGTERM)"),
      integer("keep-checkpoints", &Config::keep_checkpoints, above(0),
              "newest checkpoints kept in RUN_DIR/checkpoints"),
      {"resume",
       "auto: continue from the newest valid checkpoint in RUN_DIR (fresh if none); PATH: from "
       "exactly that checkpoint",
       [](Config& c, const std::string& v) { c.resume = v; },
       [](const Config& c) { return c.resume.empty() ? std::string("(no)") : c.resume; }, false,
       false},
      real("collective-timeout", &Config::collective_timeout_s, at_least(0),
           "seconds a rank may wait for the others in a collective before it ends the job (a "
           "stopped, dead or unreachable rank); 0 = wait forever"),
  };
  return table;
}

// Boost parses the words; every option's value arrives as text, for the table to convert.
po::options_description boost_options(std::map<std::string, std::string>& raw) {
  const Config defaults;
  po::options_description options("dae_dist options (INI keys are the same names without --)");
  const std::string exit_codes_help =
      "print the exit codes that scripts act on, one NAME=VALUE line each, and exit (preempted=" +
      std::to_string(kExitPreempted) + ": stopped on a signal after writing a checkpoint; run "
      "again with --resume auto)";
  options.add_options()("help", "print this help and exit")(
      "print-exit-codes", exit_codes_help.c_str())(
      "print-run-dir",
      "check the other options, print the run directory they name and exit (the folder of "
      "checkpoints/ and stopped.json)")(
      "config", po::value(&raw["config"]), "INI file of options; the command line wins");
  for (const Option& option : options_table()) {
    auto* value = po::value(&raw[option.name]);
    if (option.is_switch)
      value->zero_tokens()->implicit_value("true");
    else if (option.has_default)
      value->default_value(option.show(defaults));
    options.add_options()(option.name.c_str(), value, option.help.c_str());
  }
  return options;
}

// What no single option can check alone.
void check_combinations(const Config& config) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw_config_error(message);
  };
  require(!config.data.empty(), "data: missing (give --data FILE or data = FILE in the config)");
  require(!config.run_dir.empty(), "run-dir: must not be empty");
  require(!config.cuda_graph || config.device != DeviceKind::kCpu,
          "cuda-graph: needs a GPU, but device = cpu");
  require(!config.cuda_graph || config.backend != BackendKind::kMpi,
          "cuda-graph: needs backend = nccl or auto: the MPI backend's all-reduce goes through "
          "host memory, which a CUDA graph cannot capture");
  // World-size invariant mode; what needs the world size is checked by per_rank_batch().
  if (invariant_mode(config)) {
    require(config.global_batch_size % config.virtual_shards == 0,
            "global-batch-size: " + std::to_string(config.global_batch_size) +
                " is not a multiple of virtual-shards (" + std::to_string(config.virtual_shards) +
                "): every virtual shard takes the same number of images per step");
    require(!config.cuda_graph,
            "cuda-graph: not with global-batch-size (a step is one forward and backward per "
            "virtual shard, which the captured graph does not hold)");
  }
  require(!config.eval_only || !config.resume.empty(),
          "eval-only: needs --resume auto or --resume PATH (the checkpoint to evaluate)");
  if (config.noise_type != NoiseType::kGaussian) {
    const std::string type = name_of(config.noise_type);
    require(config.noise <= 1, "noise: for " + type + " it is a fraction of pixels, at most 1");
    for (double level : config.eval_noise)
      require(level <= 1, "eval-noise: for " + type + " levels are fractions of pixels, at most 1");
  }
}

// The sweep always reports the clean test MSE and the training noise.
void add_clean_and_training_levels(Config& config) {
  for (double level : {0.0, config.noise})
    if (std::find(config.eval_noise.begin(), config.eval_noise.end(), level) ==
        config.eval_noise.end())
      config.eval_noise.push_back(level);
  std::sort(config.eval_noise.begin(), config.eval_noise.end());
}

}  // namespace

Config parse_config(int argc, const char* const* argv) {
  std::map<std::string, std::string> raw;
  const po::options_description options = boost_options(raw);
  for (int i = 1; i < argc; ++i) refuse_placeholders(argv[i], "command line");
  po::variables_map values;
  try {
    // Stored first, so the command line wins over the file for every key.
    po::store(po::parse_command_line(argc, argv, options), values);
    if (values.count("help")) {
      std::ostringstream text;
      text << options;
      throw InfoRequested{text.str()};
    }
    if (values.count("print-exit-codes"))
      throw InfoRequested{"preempted=" + std::to_string(kExitPreempted) + "\n"};
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
    throw_config_error(error.what());
  }
  Config config;
  config.config_file = raw["config"];
  for (const Option& option : options_table())
    if (values.count(option.name)) option.set(config, raw[option.name]);
  const auto given = [&values](const char* name) {
    return values.count(name) != 0 && !values[name].defaulted();
  };
  config.batch_size_set = given("batch-size");
  check_combinations(config);
  if (given("virtual-shards") && !invariant_mode(config))
    throw_config_error("virtual-shards: needs global-batch-size (per-rank mode, the default, "
                       "has no virtual shards)");
  add_clean_and_training_levels(config);
  // Last: the answer is the run directory of a command line that would start.
  if (values.count("print-run-dir")) throw InfoRequested{config.run_dir + "\n"};
  return config;
}

std::string describe_config(const Config& config) {
  std::ostringstream out;
  auto row = [&out](const std::string& key, const std::string& value) {
    out << "  " << std::left << std::setw(18) << key << " " << value << "\n";
  };
  row("config", config.config_file.empty() ? "(none)" : config.config_file);
  for (const Option& option : options_table())
    if (option.listed(config)) row(option.name, option.show(config));
  return out.str();
}

std::map<std::string, std::string> described_config_rows(const std::string& text) {
  std::map<std::string, std::string> rows;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string key, value;
    fields >> key;
    std::getline(fields >> std::ws, value);
    if (!key.empty()) rows[key] = value;
  }
  return rows;
}

Config config_from_description(const std::string& text) {
  const Config defaults;
  Config config;
  const auto rows = described_config_rows(text);
  // A row that shows the default stays the default: "(none)" and "(no)" show empty values.
  if (const auto file = rows.find("config"); file != rows.end() && file->second != "(none)")
    config.config_file = file->second;
  for (const Option& option : options_table()) {
    const auto row = rows.find(option.name);
    if (row != rows.end() && row->second != option.show(defaults)) option.set(config, row->second);
  }
  return config;
}

Config evaluation_config(const Config& trained, const Config& command) {
  Config config = trained;
  // What this job evaluates on and writes to, and how it computes: none of it changes what the
  // model learnt, and a checkpoint trained on a GPU must still be evaluated on a CPU.
  config.data = command.data;
  config.run_dir = command.run_dir;
  config.eval_noise = command.eval_noise;
  config.eval_batch = command.eval_batch;
  config.eval_only = command.eval_only;
  config.resume = command.resume;
  config.threads = command.threads;
  config.device = command.device;
  config.backend = command.backend;
  config.share_gpus = command.share_gpus;
  config.kernels = command.kernels;
  config.precision = command.precision;
  config.cuda_graph = command.cuda_graph;
  config.collective_timeout_s = command.collective_timeout_s;
  add_clean_and_training_levels(config);
  check_combinations(config);
  return config;
}

}  // namespace dae
