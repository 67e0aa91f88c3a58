// dae_dist: data-parallel training of the denoising autoencoder, one MPI rank per device.
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "dae/checkpoint.hpp"
#include "dae/config.hpp"
#include "dae/cuda_support.hpp"
#include "dae/dataset.hpp"
#include "dae/device.hpp"
#include "dae/error.hpp"
#include "dae/evaluator.hpp"
#include "dae/files.hpp"
#include "dae/model.hpp"
#include "dae/mpi.hpp"
#include "dae/mpi_communicator.hpp"
#include "dae/nccl_communicator.hpp"
#include "dae/signals.hpp"
#include "dae/tensorboard.hpp"
#include "dae/trainer.hpp"

namespace {

constexpr const char* kProgram = "dae_dist";

// Ranks x threads should not exceed the node's cores: oversubscribed OpenMP threads spin and
// slow every rank down.
int intra_op_threads(const dae::Config& config, int ranks_on_node) {
  if (config.threads > 0) return static_cast<int>(config.threads);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / ranks_on_node);
}

std::string summary_json(const dae::Config& config, int world, const dae::FitResult& fit,
                         double peak_rss_mb,
                         const std::vector<dae::NoiseMetrics>& sweep) {
  std::ostringstream json;
  json << "{\n"
       << "  \"world_size\": " << world << ",\n"
       << "  \"steps\": " << config.steps << ",\n"
       << "  \"batch_size_per_rank\": " << config.batch_size << ",\n"
       << "  \"train_noise\": " << dae::json_number(config.noise) << ",\n"
       << "  \"samples_per_s\": " << dae::json_number(fit.samples_per_s) << ",\n"
       << "  \"samples_per_s_steady\": " << dae::json_number(fit.steady_samples_per_s) << ",\n"
       << "  \"peak_rss_mb\": " << dae::json_number(peak_rss_mb) << ",\n"
       << "  \"wall_s\": " << dae::json_number(fit.wall_s) << ",\n"
       << "  \"train_loss_final\": " << dae::json_number(fit.final_loss) << ",\n"
       << "  \"test_mse\": {";
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "%.1f", sweep[i].noise);
    json << (i ? ", " : "") << "\"" << key << "\": " << dae::json_number(sweep[i].mse);
  }
  json << "}\n}\n";
  return json.str();
}

// `--resume auto|PATH`: loads the model and Adam's state and returns the saved training state;
// nothing when auto finds no usable checkpoint (the model is then left as it was). With auto, a
// checkpoint that does not load on every rank is skipped with a warning and the next older one
// tried; with a path, that file must load. Every rank takes the same decision.
std::optional<dae::CheckpointData> resume(const dae::Config& config, const dae::MpiComm& world,
                                          dae::Denoiser& model, torch::optim::Adam& optimizer) {
  const bool automatic = config.resume == "auto";
  // Rank 0 lists the directory and tells the others, so that all try the same files in the same
  // order even where a shared file system shows ranks different listings for a moment.
  std::string listing;
  if (world.rank() == 0)
    for (const std::string& path : dae::list_checkpoints(config.run_dir)) listing += path + "\n";
  dae::broadcast_string(world, listing, 0);
  std::vector<std::string> candidates{config.resume};
  if (automatic) {
    candidates.clear();
    std::istringstream lines(listing);
    for (std::string path; std::getline(lines, path);) candidates.push_back(path);
  }
  // A failed load can leave some tensors overwritten: keep the fresh start to fall back to.
  std::vector<torch::Tensor> initial;
  for (const auto& parameter : model.parameters()) initial.push_back(parameter.detach().clone());

  for (const std::string& path : candidates) {
    dae::CheckpointData saved;
    std::string failure;
    optimizer.state().clear();  // no moments left over from a file that failed
    try {
      saved = dae::load_checkpoint(path, model, optimizer);
    } catch (const std::exception& error) {
      failure = dae::one_line(error);
    }
    if (!automatic) {
      dae::run_collectively(world, kProgram, [&] {
        if (!failure.empty()) throw dae::Error("--resume: " + failure);
      });
    } else if (!dae::all_ranks_agree(world, failure.empty())) {
      if (world.rank() == 0)
        std::fprintf(stderr, "%s: warning: skipping checkpoint %s: %s\n", kProgram, path.c_str(),
                     failure.empty() ? "it did not load on every rank" : failure.c_str());
      continue;
    }
    if (world.rank() == 0)
      std::printf("resumed from %s at step %lld\n", path.c_str(),
                  static_cast<long long>(saved.step));
    return saved;
  }
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  for (auto& parameter : model.parameters()) parameter.copy_(initial[i++]);
  optimizer.state().clear();
  if (world.rank() == 0)
    std::printf("no usable checkpoint in %s/checkpoints\n", config.run_dir.c_str());
  return std::nullopt;
}

// The rows of describe_config() as key -> value.
std::map<std::string, std::string> config_rows(const std::string& text) {
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

// A resumed run may change any option, and changing the learning rate or the step count is
// routine; but the options that define what is being trained are worth a line each, so that a
// silent change (another data file, another noise) never goes unnoticed in the log.
void warn_about_changed_options(const dae::Config& config, const std::string& saved_text) {
  if (saved_text.empty()) return;
  const auto saved = config_rows(saved_text);
  const auto now = config_rows(dae::describe_config(config));
  for (const char* key : {"data", "batch-size", "lr", "lr-warmup", "lr-schedule", "lr-floor",
                          "adam-eps", "clip-grad-norm", "noise", "noise-type", "seed", "model",
                          "init", "init-bias", "output-activation", "kernels", "precision"}) {
    const auto before = saved.find(key), after = now.find(key);
    if (before != saved.end() && after != now.end() && before->second != after->second)
      std::fprintf(stderr, "%s: warning: resume: %s changed from %s to %s\n", kProgram, key,
                   before->second.c_str(), after->second.c_str());
  }
}

// The largest peak resident set size of any rank, in MiB.
double largest_peak_rss_mb(const dae::MpiComm& world) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double mine = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
  double largest = mine;
  world.all_reduce(&largest, 1, MPI_DOUBLE, MPI_MAX, "the peak-memory reduction");
  return largest;
}

void print_profile(const std::vector<std::pair<std::string, double>>& phases) {
  double total = 0;
  for (const auto& phase : phases) total += phase.second;
  std::printf("profile (rank 0, per step; on a GPU from CUDA events, one wait per step):\n");
  for (const auto& [name, seconds] : phases)
    std::printf("  %-17s %8.3f ms  %5.1f %%\n", name.c_str(), seconds * 1e3,
                total > 0 ? 100 * seconds / total : 0.0);
  std::printf("  %-17s %8.3f ms\n", "total", total * 1e3);
}

void print_sweep(const dae::Config& config, const std::vector<dae::NoiseMetrics>& sweep) {
  for (const auto& level : sweep)
    std::printf("  test %s %.2f: MSE %.6f  PSNR %.2f dB  SSIM %.4f (%lld images)\n",
                config.noise_type.c_str(), level.noise, level.mse, level.psnr, level.ssim,
                static_cast<long long>(level.images));
}

// `--eval-only`: the whole evaluation of one checkpoint, no training.
int evaluate_only(const dae::Config& config, const dae::MpiComm& world, dae::Communicator& comm,
                  dae::Denoiser& model) {
  torch::optim::Adam unused(model.parameters());
  const auto saved = resume(config, world, model, unused);
  dae::run_collectively(world, kProgram, [&] {
    if (!saved) throw dae::Error("eval-only: no checkpoint to evaluate");
  });
  dae::TrainState state;
  state.step = saved->step;
  state.loss_history = saved->loss_history;
  const auto sweep = dae::Evaluator(config, comm, true).evaluate(model, state);
  if (world.rank() == 0) {
    print_sweep(config, sweep);
    std::printf("outputs in %s/eval: report.html\n", config.run_dir.c_str());
  }
  return 0;
}

int train(dae::MpiComm& world, int argc, char** argv) {
  // First of all: a stop signal during start-up must not kill the rank (the default action).
  dae::install_stop_handlers();
  dae::Config config;
  try {
    dae::run_collectively(world, kProgram, [&] { config = dae::parse_config(argc, argv); });
  } catch (const dae::HelpRequested& help) {
    if (world.rank() == 0) std::fputs(help.text.c_str(), stdout);
    return 0;
  }
  world.set_collective_timeout(config.collective_timeout_s);
  // The sweep always reports the clean test MSE and the training noise.
  for (double level : {0.0, config.noise})
    if (std::find(config.eval_noise.begin(), config.eval_noise.end(), level) ==
        config.eval_noise.end())
      config.eval_noise.push_back(level);
  std::sort(config.eval_noise.begin(), config.eval_noise.end());

  const int threads = intra_op_threads(config, world.local_size());
  torch::set_num_threads(threads);
  if (world.rank() == 0) {
    std::printf("%s: %d ranks x %d threads, effective configuration:\n%s", kProgram, world.size(),
                threads, dae::describe_config(config).c_str());
    std::fflush(stdout);
  }

  // Everything that can be checked before training is checked here, so that no bad input is
  // found only after hours of it; and the run dir is locked before anything is written to it.
  std::unique_ptr<dae::RunDirLock> lock;
  dae::run_collectively(world, kProgram, [&] {
    if (world.rank() == 0) {
      std::filesystem::create_directories(config.run_dir);
      lock = std::make_unique<dae::RunDirLock>(config.run_dir);
      for (const char* inside : {"checkpoints", "eval"}) {
        const std::filesystem::path path = std::filesystem::path(config.run_dir) / inside;
        if (std::filesystem::exists(path) && !std::filesystem::is_directory(path))
          throw dae::Error("run-dir " + config.run_dir + ": " + path.string() +
                           " exists and is not a directory");
      }
    }
    dae::check_data_file(config.data);
  });
  dae::DevicePlan plan;
  std::unique_ptr<dae::Communicator> communicator;
  // Each rank plans from the GPUs it sees and those its node's other ranks see (Slurm may bind
  // all GPUs to every rank, one to each, or one to several); every rank takes part in the
  // gathers and votes even where its own part failed, so that none is left waiting in them.
  std::vector<std::string> gpus;
  std::string gpu_error;
  try {
    gpus = dae::visible_gpus(config.device, config.backend);
  } catch (const std::exception& error) {
    gpu_error = dae::one_line(error);
  }
  dae::DeviceFacts facts{};
  facts.assignment = dae::assign_gpu(dae::gather_node_gpus(world, gpus), world.local_rank());
  facts.every_rank_has_gpu = dae::all_ranks_agree(world, !gpus.empty());
  facts.gpu_shared_in_job = !dae::all_ranks_agree(world, facts.assignment.sharing_with.empty());
  dae::run_collectively(world, kProgram, [&] {
    if (!gpu_error.empty()) throw dae::Error(gpu_error);
    facts.cuda_built = dae::cuda_built();
    facts.nccl_built = dae::nccl_built();
    facts.gpus_visible = static_cast<int>(gpus.size());
    facts.nvidia_device_files = dae::nvidia_devices_present();
    facts.local_rank = world.local_rank();
    facts.local_size = world.local_size();
    plan = dae::plan_device(config.device, config.backend, config.share_gpus, facts);
    // The device is set for the whole process before the communicator, the model or any other
    // CUDA call (set_up_device's order).
    const auto make_communicator = [&](const dae::DevicePlan& chosen) {
      return chosen.backend == "nccl"
                 ? dae::make_nccl_communicator(world, chosen.device, config.collective_timeout_s)
                 : std::make_unique<dae::MpiCommunicator>(world);
    };
    communicator = dae::set_up_device(plan, {dae::select_gpu, make_communicator});
  });
  dae::Communicator& comm = *communicator;
  if (!plan.warning.empty() && world.local_rank() == 0)  // once per node
    std::fprintf(stderr, "%s: warning: rank %d: %s\n", kProgram, world.rank(),
                 plan.warning.c_str());
  if (world.rank() == 0)
    std::printf("device: %s, backend %s (%s)\n", plan.device.str().c_str(), comm.name(),
                plan.reason.c_str());
  torch::manual_seed(static_cast<std::uint64_t>(config.seed));
  const dae::ModelPtr model = dae::make_model(config);
  model->to(plan.device);
  dae::broadcast_parameters(*model, comm);
  if (world.rank() == 0)
    std::printf("model: %s, %lld parameters\n", config.model.c_str(),
                static_cast<long long>(dae::count_parameters(*model)));
  if (config.eval_only) return evaluate_only(config, world, comm, *model);

  dae::Shard train;
  dae::run_collectively(world, kProgram, [&] {
    train = dae::Shard::read_for_rank(config.data, "train", world.rank(), world.size());
    // A batch larger than the shard would repeat its images within every step.
    if (config.batch_size > train.rows())
      throw dae::Error("batch-size " + std::to_string(config.batch_size) + " is larger than rank " +
                       std::to_string(world.rank()) + "'s shard of " +
                       std::to_string(train.rows()) + " training rows (" +
                       std::to_string(train.total_rows) + " over " +
                       std::to_string(world.size()) + " ranks): use a smaller batch or fewer ranks");
  });
  std::printf("rank %d/%d: rows [%llu, %llu) of %llu\n", world.rank(), world.size(),
              static_cast<unsigned long long>(train.first_row),
              static_cast<unsigned long long>(train.first_row + train.rows()),
              static_cast<unsigned long long>(train.total_rows));
  std::fflush(stdout);

  dae::Checkpointer checkpointer(world, config.run_dir, config.keep_checkpoints,
                                 dae::describe_config(config));
  dae::Evaluator evaluator(config, comm, !config.resume.empty());
  std::unique_ptr<dae::Trainer> made;  // its options are checked against the device here
  dae::run_collectively(world, kProgram, [&] {
    made = std::make_unique<dae::Trainer>(config, comm, train, model, &checkpointer, &evaluator);
  });
  dae::Trainer& trainer = *made;
  if (world.rank() == 0) std::printf("kernels: %s\n", trainer.kernels().c_str());
  if (!config.resume.empty()) {
    if (const auto saved = resume(config, world, *model, trainer.optimizer())) {
      // Every rank read the same file; rank 0's view of the run dir decides for all (a vote of
      // every other rank's "yes"), so all leave here together.
      const bool summarised = dae::all_ranks_agree(
          world, world.rank() != 0 ||
                     std::filesystem::exists(std::filesystem::path(config.run_dir) / "summary.json"));
      if (saved->step >= config.steps && summarised) {
        if (world.rank() == 0)
          std::printf("resume: the checkpoint is at step %lld, at or past --steps %ld: this run "
                      "is already finished; nothing to do (summary.json and eval/ are kept; "
                      "give a larger --steps to train on)\n",
                      static_cast<long long>(saved->step), config.steps);
        return 0;
      }
      if (saved->step >= config.steps && world.rank() == 0)
        std::printf("resume: the checkpoint is at step %lld, at or past --steps %ld, but the run "
                    "has no summary.json (it ended during its final evaluation): evaluating\n",
                    static_cast<long long>(saved->step), config.steps);
      dae::run_collectively(world, kProgram, [&] {
        if (world.rank() != 0) return;
        warn_about_changed_options(config, saved->config_text);
        const std::string aside = dae::set_aside_later_checkpoints(config.run_dir, saved->step);
        if (!aside.empty())
          std::printf("resume: checkpoints after step %lld belong to the line this run leaves; "
                      "moved to %s (nothing deleted)\n",
                      static_cast<long long>(saved->step), aside.c_str());
      });
      bool exact = false;
      dae::run_collectively(world, kProgram, [&] { exact = trainer.resume_from(*saved); });
      if (!exact && world.rank() == 0)
        std::fprintf(stderr,
                     "%s: warning: checkpoint was written by %lld ranks (this job has %d) or on "
                     "another kind of device: model and optimizer continue exactly, but the data "
                     "order and noise streams are re-derived and differ from the uninterrupted "
                     "run\n",
                     kProgram, static_cast<long long>(saved->world_size), world.size());
    } else if (world.rank() == 0) {
      std::printf("starting fresh\n");
    }
  }
  // Rank 0's TensorBoard log of this part of the run, in RUN_DIR/tensorboard/.
  std::unique_ptr<dae::TensorBoardWriter> tensorboard;
  dae::run_collectively(world, kProgram, [&] {
    if (world.rank() != 0) return;
    const bool resumed = trainer.state().step > 0;
    tensorboard = std::make_unique<dae::TensorBoardWriter>(
        config.run_dir + "/tensorboard", resumed ? trainer.state().step : -1);
    trainer.set_tensorboard(tensorboard.get());
    evaluator.set_tensorboard(tensorboard.get());
  });
  const dae::FitResult fit = trainer.fit();
  if (fit.stopped) return dae::kExitPreempted;
  if (world.rank() == 0) {
    // The evaluation is collective and short; a stop signal now is honoured when it ends.
    std::printf("training done and checkpointed; final evaluation (a stop signal now takes "
                "effect after it)\n");
    std::fflush(stdout);
  }
  const auto sweep = evaluator.evaluate(*model, trainer.state());
  const double peak_rss_mb = largest_peak_rss_mb(world);
  dae::run_collectively(world, kProgram, [&] {
    if (world.rank() != 0) return;
    std::printf("done: %lld steps in %.1f s, %.0f samples/s, final train loss %.6f\n",
                static_cast<long long>(fit.steps), fit.wall_s, fit.samples_per_s,
                fit.final_loss);
    print_sweep(config, sweep);
    if (config.profile) print_profile(trainer.profile());
    dae::write_file_durably(config.run_dir + "/summary.json",
                               summary_json(config, world.size(), fit, peak_rss_mb, sweep));
    std::printf("outputs in %s: summary.json, eval/report.html\n", config.run_dir.c_str());
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dae::run_job(kProgram, argc, argv,
                      [&](dae::MpiComm& world) { return train(world, argc, argv); });
}
