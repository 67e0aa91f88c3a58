// dae_dist: data-parallel training of the denoising autoencoder, one MPI rank per device.
// Reads like the job it runs: parse -> MPI -> device -> data -> model -> resume -> fit -> evaluate.
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <memory>
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

std::string summary_json(const dae::Config& config, int world, const dae::FitResult& fit,
                         double peak_rss_mb,
                         const std::vector<dae::NoiseMetrics>& sweep) {
  std::ostringstream json;
  json << "{\n"
       << "  \"world_size\": " << world << ",\n"
       << "  \"steps\": " << config.steps << ",\n"
       << "  \"batch_size_per_rank\": " << config.batch_size << ",\n";
  if (config.global_batch_size > 0)
    json << "  \"global_batch_size\": " << config.global_batch_size << ",\n"
         << "  \"virtual_shards\": " << config.virtual_shards << ",\n";
  json << "  \"train_noise\": " << dae::json_number(config.noise) << ",\n"
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

// `--eval-only`: the whole evaluation of one checkpoint, no training.
int evaluate_only(const dae::Config& config, dae::Communicator& comm, dae::Denoiser& model) {
  torch::optim::Adam unused(model.parameters());
  const auto saved = dae::load_resume_checkpoint(config, comm, model, unused);
  comm.run_collectively([&] {
    if (!saved) throw dae::Error("eval-only: no checkpoint to evaluate");
  });
  const auto sweep =
      dae::Evaluator(config, comm, true).evaluate(model, saved->step, saved->loss_history);
  if (comm.rank() == 0) {
    print_sweep(config, sweep);
    std::printf("outputs in %s/eval: report.html\n", config.run_dir.c_str());
  }
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
  } catch (const dae::HelpRequested& help) {
    if (world.rank() == 0) std::fputs(help.text.c_str(), stdout);
    return 0;
  }
  world.set_collective_timeout(config.collective_timeout_s);
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
  if (config.eval_only) return evaluate_only(config, comm, *model);

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
                            summary_json(config, comm.size(), fit, peak_rss_mb, sweep));
    std::printf("outputs in %s: summary.json, eval/report.html\n", config.run_dir.c_str());
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dae::run_job(kProgram, argc, argv,
                      [&](dae::MpiComm& world) { return train(world, argc, argv); });
}
