// dae_dist: data-parallel training of the denoising autoencoder, one MPI rank per device.
// Reads like the job it runs: parse -> MPI -> device -> data -> model -> resume -> fit -> evaluate.
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "dae/core/config.hpp"
#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/core/signals.hpp"
#include "dae/data/dataset.hpp"
#include "dae/data/virtual_shards.hpp"
#include "dae/dist/communicator.hpp"
#include "dae/dist/device.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/eval/evaluator.hpp"
#include "dae/io/tensorboard.hpp"
#include "dae/model/model.hpp"
#include "dae/train/checkpoint.hpp"
#include "dae/train/resume.hpp"
#include "dae/train/trainer.hpp"

namespace {

constexpr const char* kProgram = "dae_dist";

// Ranks x threads should not exceed the node's cores: oversubscribed OpenMP threads spin and
// slow every rank down.
int intra_op_threads(const dae::Config& config, int ranks_on_node) {
  if (config.threads > 0) return static_cast<int>(config.threads);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / ranks_on_node);
}

// What only the job that trained measures; the summary of an --eval-only job goes without it.
struct Measured {
  dae::FitResult fit;
  double peak_rss_mb = 0;  // the largest of any rank
};

// RUN_DIR/summary.json of a model trained for `steps` steps on `world` ranks (as `config`
// describes), with `final_loss` its last step's mean loss and `sweep` its test metrics.
std::string summary_json(const dae::Config& config, std::int64_t world, std::int64_t steps,
                         double final_loss, const std::optional<Measured>& measured,
                         const std::vector<dae::NoiseMetrics>& sweep) {
  std::ostringstream json;
  json << "{\n"
       << "  \"world_size\": " << world << ",\n"
       << "  \"steps\": " << steps << ",\n"
       << "  \"batch_size_per_rank\": " << config.batch_size << ",\n";
  if (config.global_batch_size > 0)
    json << "  \"global_batch_size\": " << config.global_batch_size << ",\n"
         << "  \"virtual_shards\": " << config.virtual_shards << ",\n";
  json << "  \"train_noise\": " << dae::json_number(config.noise) << ",\n";
  if (measured)
    json << "  \"samples_per_s\": " << dae::json_number(measured->fit.samples_per_s) << ",\n"
         << "  \"samples_per_s_steady\": "
         << dae::json_number(measured->fit.steady_samples_per_s) << ",\n"
         << "  \"peak_rss_mb\": " << dae::json_number(measured->peak_rss_mb) << ",\n"
         << "  \"wall_s\": " << dae::json_number(measured->fit.wall_s) << ",\n";
  json << "  \"train_loss_final\": " << dae::json_number(final_loss) << ",\n"
       << "  \"eval_only\": " << (config.eval_only ? "true" : "false") << ",\n"
       << "  \"test_mse\": {";
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "%.1f", sweep[i].noise);
    json << (i ? ", " : "") << "\"" << key << "\": " << dae::json_number(sweep[i].mse);
  }
  json << "}\n}\n";
  return json.str();
}

// The largest peak resident set size of any rank, in MiB.
double largest_peak_rss_mb(const dae::Communicator& comm) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return comm.max(static_cast<double>(usage.ru_maxrss) / 1024.0);  // ru_maxrss is in KiB
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
    std::printf("  test %s %.2f: MSE %.6f  PSNR %.2f dB  SSIM %.4f (%lld images; dead "
                "channels: %lld)\n",
                dae::name_of(config.noise_type).c_str(), level.noise, level.mse, level.psnr,
                level.ssim, static_cast<long long>(level.images),
                static_cast<long long>(level.dead_channels));
}

// Everything that can be checked before training is checked here, so that no bad input is
// found only after hours of it; and the run dir is locked (rank 0 holds the lock) before
// anything is written to it.
std::unique_ptr<dae::RunDirLock> lock_and_check_run(const dae::Config& config,
                                                    const dae::Communicator& control) {
  std::unique_ptr<dae::RunDirLock> lock;
  control.run_collectively([&] {
    if (control.rank() == 0) {
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
  return lock;
}

// This rank's shard of the training split.
dae::Shard read_training_shard(const dae::Config& config, const dae::Communicator& comm) {
  dae::Shard train;
  comm.run_collectively([&] {
    if (config.global_batch_size > 0) {  // the rows of this rank's virtual shards
      const dae::VirtualShardLayout layout = dae::VirtualShardLayout::make(
          dae::count_rows(config.data, "train"), config, comm.rank(), comm.size());
      train = dae::read_virtual_shards(config.data, "train", layout, comm.rank(), comm.size());
      return;
    }
    train = dae::Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
    // A batch larger than the shard would repeat its images within every step.
    if (config.batch_size > train.rows())
      throw dae::Error("batch-size " + std::to_string(config.batch_size) + " is larger than rank " +
                       std::to_string(comm.rank()) + "'s shard of " +
                       std::to_string(train.rows()) + " training rows (" +
                       std::to_string(train.total_rows) + " over " +
                       std::to_string(comm.size()) + " ranks): use a smaller batch or fewer ranks");
  });
  std::printf("rank %d/%d: rows [%llu, %llu) of %llu\n", comm.rank(), comm.size(),
              static_cast<unsigned long long>(train.first_row),
              static_cast<unsigned long long>(train.first_row + train.rows()),
              static_cast<unsigned long long>(train.total_rows));
  if (config.global_batch_size > 0) {
    const long owned = config.virtual_shards / comm.size();
    std::printf("rank %d/%d: virtual shards %ld-%ld of %ld, %ld images each per step\n",
                comm.rank(), comm.size(), comm.rank() * owned, (comm.rank() + 1) * owned - 1,
                config.virtual_shards, images_per_virtual_shard(config));
  }
  std::fflush(stdout);
  return train;
}

// `--eval-only` evaluates, and reports, the checkpoint's own training: rank 0 reads the
// configuration stored in the checkpoint that --resume names (auto: the newest that opens, the
// first that load_resume_checkpoint tries) and every rank takes the training's options from it
// (dae::evaluation_config), so that the network built is the one trained. `trained_text` gets
// the stored text; where none was read, the command's options stand.
dae::Config eval_only_config(const dae::Config& command, const dae::Communicator& control,
                             std::string& trained_text) {
  std::string path;
  control.run_collectively([&] {
    if (control.rank() != 0) return;
    const std::vector<std::string> candidates = command.resume == "auto"
                                                    ? dae::list_checkpoints(command.run_dir)
                                                    : std::vector<std::string>{command.resume};
    for (const std::string& candidate : candidates) {
      try {
        trained_text = dae::read_checkpoint_config(candidate);
        path = candidate;
        return;
      } catch (const dae::Error&) {
        // A file that does not open: load_resume_checkpoint skips it, or refuses it, and says so.
      }
    }
  });
  control.broadcast_text(trained_text, 0);
  control.broadcast_text(path, 0);
  dae::Config config = command;
  control.run_collectively([&] {
    if (trained_text.empty()) return;
    try {
      config = dae::evaluation_config(dae::config_from_description(trained_text), command);
    } catch (const dae::Error& error) {
      throw dae::Error("eval-only: " + path + ": " + error.what());
    }
  });
  return config;
}

// `--eval-only`: the whole evaluation of one checkpoint, no training; `trained_text` is the
// configuration eval_only_config() read.
int evaluate_only(const dae::Config& config, const std::string& trained_text,
                  dae::Communicator& comm, dae::Denoiser& model) {
  torch::optim::Adam unused(model.parameters());
  const auto saved = dae::load_resume_checkpoint(config, comm, model, unused);
  comm.run_collectively([&] {
    if (!saved) throw dae::Error("eval-only: no checkpoint to evaluate");
    // auto skips a newest checkpoint that opens but does not load: an older one, trained with
    // other options, would be evaluated in the network and reported with the options it did
    // not have.
    if (saved->config_text != trained_text)
      throw dae::Error("eval-only: the checkpoint that loaded was trained with other options "
                       "than the newest one, which did not load: name it with --resume PATH");
  });
  if (comm.rank() == 0 && trained_text.empty())
    std::fprintf(stderr, "%s: warning: eval-only: the checkpoint stores no configuration (an "
                 "older or foreign file): reporting this command's options\n", kProgram);
  // The report shows one data file, the one evaluated; the one trained on is said here.
  const auto trained_rows = dae::described_config_rows(trained_text);
  if (const auto data = trained_rows.find("data");
      comm.rank() == 0 && data != trained_rows.end() && data->second != config.data)
    std::printf("eval-only: evaluating on the test split of %s; the checkpoint was trained on "
                "%s\n", config.data.c_str(), data->second.c_str());
  const auto sweep =
      dae::Evaluator(config, comm, true).evaluate(model, saved->step, saved->loss_history);
  comm.run_collectively([&] {
    if (comm.rank() != 0) return;
    print_sweep(config, sweep);
    // Its own step, not --steps: a checkpoint of a run stopped early, or of an earlier step.
    dae::write_file_durably(config.run_dir + "/summary.json",
                            summary_json(config, saved->world_size, saved->step,
                                         saved->last_loss, std::nullopt, sweep));
    std::printf("outputs in %s: summary.json, eval/report.html\n", config.run_dir.c_str());
  });
  return 0;
}

int train(dae::MpiComm& world, int argc, char** argv) {
  // First of all: a stop signal during start-up must not kill the rank (the default action).
  dae::install_stop_handlers();
  // The control plane until the device's communicator exists (both run it over `world`).
  const dae::MpiCommunicator startup(world);
  dae::Config config;
  try {
    startup.run_collectively([&] {
      config = dae::parse_config(argc, argv);
      // World-size invariant mode: batch-size follows from the global batch and the ranks.
      if (config.global_batch_size > 0)
        config.batch_size = dae::per_rank_batch(config, world.size());
    });
  } catch (const dae::InfoRequested& info) {
    if (world.rank() == 0) std::fputs(info.text.c_str(), stdout);
    return 0;
  }
  world.set_collective_timeout(config.collective_timeout_s);
  std::string trained_text;  // --eval-only: the configuration stored in the checkpoint
  if (config.eval_only) config = eval_only_config(config, startup, trained_text);
  const int threads = intra_op_threads(config, world.local_size());
  torch::set_num_threads(threads);
  if (world.rank() == 0) {
    std::printf("%s: %d ranks x %d threads, effective configuration:\n%s", kProgram, world.size(),
                threads, dae::describe_config(config).c_str());
    std::fflush(stdout);
  }
  const std::unique_ptr<dae::RunDirLock> lock = lock_and_check_run(config, startup);

  const dae::JobDevice device = dae::set_up_job_device(config, startup);
  dae::Communicator& comm = *device.comm;
  if (!device.plan.warning.empty() && comm.local_rank() == 0)  // once per node
    std::fprintf(stderr, "%s: warning: rank %d: %s\n", kProgram, comm.rank(),
                 device.plan.warning.c_str());
  if (comm.rank() == 0)
    std::printf("device: %s, backend %s (%s)\n", device.plan.device.str().c_str(), comm.name(),
                device.plan.reason.c_str());

  torch::manual_seed(static_cast<std::uint64_t>(config.seed));
  const dae::ModelPtr model = dae::make_model(config.model);
  model->to(device.plan.device);
  dae::broadcast_parameters(*model, comm);
  if (comm.rank() == 0)
    std::printf("model: %s, %lld parameters\n", dae::name_of(config.model.kind).c_str(),
                static_cast<long long>(dae::count_parameters(*model)));
  if (config.eval_only) return evaluate_only(config, trained_text, comm, *model);

  const dae::Shard train = read_training_shard(config, comm);
  dae::Checkpointer checkpointer(comm, config.run_dir, config.keep_checkpoints,
                                 dae::describe_config(config));
  dae::Evaluator evaluator(config, comm, !config.resume.empty());
  std::unique_ptr<dae::Trainer> made;  // its options are checked against the device here
  comm.run_collectively([&] {
    made = std::make_unique<dae::Trainer>(
        config, comm, train, model, &checkpointer, [&](const dae::TrainState& state) {
          evaluator.evaluate(*model, state.step, state.loss_history);
        });
  });
  dae::Trainer& trainer = *made;
  if (comm.rank() == 0) std::printf("kernels: %s\n", trainer.kernels().c_str());
  if (dae::resume_training(config, comm, *model, trainer) == dae::ResumeOutcome::kFinished)
    return 0;

  // Rank 0's TensorBoard log of this part of the run, in RUN_DIR/tensorboard/.
  std::unique_ptr<dae::TensorBoardWriter> tensorboard;
  comm.run_collectively([&] {
    if (comm.rank() != 0) return;
    const bool resumed = trainer.state().step > 0;
    tensorboard = std::make_unique<dae::TensorBoardWriter>(
        config.run_dir + "/tensorboard", resumed ? trainer.state().step : -1);
    trainer.set_tensorboard(tensorboard.get());
    evaluator.set_tensorboard(tensorboard.get());
  });
  const dae::FitResult fit = trainer.fit();
  if (fit.stopped) return dae::kExitPreempted;
  if (comm.rank() == 0) {
    // The evaluation is collective and short; a stop signal now is honoured when it ends.
    std::printf("training done and checkpointed; final evaluation (a stop signal now takes "
                "effect after it)\n");
    std::fflush(stdout);
  }
  const auto sweep =
      evaluator.evaluate(*model, trainer.state().step, trainer.state().loss_history);
  const double peak_rss_mb = largest_peak_rss_mb(comm);
  comm.run_collectively([&] {
    if (comm.rank() != 0) return;
    std::printf("done: %lld steps in %.1f s, %.0f samples/s, final train loss %.6f\n",
                static_cast<long long>(fit.steps), fit.wall_s, fit.samples_per_s,
                fit.final_loss);
    print_sweep(config, sweep);
    if (config.profile) print_profile(trainer.profile());
    dae::write_file_durably(config.run_dir + "/summary.json",
                            summary_json(config, comm.size(), config.steps, fit.final_loss,
                                         Measured{fit, peak_rss_mb}, sweep));
    std::printf("outputs in %s: summary.json, eval/report.html\n", config.run_dir.c_str());
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dae::run_job(kProgram, argc, argv,
                      [&](dae::MpiComm& world) { return train(world, argc, argv); });
}
