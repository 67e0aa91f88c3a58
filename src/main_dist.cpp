// dae_dist: data-parallel training of the denoising autoencoder, one MPI rank per device.
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "dae/config.hpp"
#include "dae/dataset.hpp"
#include "dae/error.hpp"
#include "dae/evaluator.hpp"
#include "dae/files.hpp"
#include "dae/model.hpp"
#include "dae/mpi.hpp"
#include "dae/mpi_communicator.hpp"
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
                         const std::vector<dae::NoiseMetrics>& sweep) {
  std::ostringstream json;
  json << "{\n"
       << "  \"world_size\": " << world << ",\n"
       << "  \"steps\": " << config.steps << ",\n"
       << "  \"batch_size_per_rank\": " << config.batch_size << ",\n"
       << "  \"train_noise\": " << dae::json_number(config.noise) << ",\n"
       << "  \"samples_per_s\": " << dae::json_number(fit.samples_per_s) << ",\n"
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

int train(dae::MpiComm& world, int argc, char** argv) {
  dae::Config config;
  try {
    dae::run_collectively(world, kProgram, [&] { config = dae::parse_config(argc, argv); });
  } catch (const dae::HelpRequested& help) {
    if (world.rank() == 0) std::fputs(help.text.c_str(), stdout);
    return 0;
  }
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

  dae::Shard train;
  dae::run_collectively(world, kProgram, [&] {
    if (world.rank() == 0) std::filesystem::create_directories(config.run_dir);
    train = dae::Shard::read_for_rank(config.data, "train", world.rank(), world.size());
    dae::count_rows(config.data, "test");
  });
  std::printf("rank %d/%d: rows [%llu, %llu) of %llu\n", world.rank(), world.size(),
              static_cast<unsigned long long>(train.first_row),
              static_cast<unsigned long long>(train.first_row + train.rows()),
              static_cast<unsigned long long>(train.total_rows));
  std::fflush(stdout);

  dae::MpiCommunicator comm(world);
  torch::manual_seed(static_cast<std::uint64_t>(config.seed));
  dae::ConvDae model(config.output_activation);
  dae::broadcast_parameters(*model, comm);

  dae::Trainer trainer(config, comm, train, model);
  const dae::FitResult fit = trainer.fit();
  const auto sweep = dae::evaluate_noise_sweep(model, comm, config.data, config.eval_noise,
                                               static_cast<std::uint64_t>(config.seed),
                                               config.eval_batch);
  if (world.rank() == 0) {
    std::printf("done: %lld steps in %.1f s, %.0f samples/s, final train loss %.6f\n",
                static_cast<long long>(fit.steps), fit.wall_s, fit.samples_per_s,
                fit.final_loss);
    for (const auto& level : sweep)
      std::printf("  test MSE at noise %.2f: %.6f (%lld images)\n", level.noise, level.mse,
                  static_cast<long long>(level.images));
    const std::string summary = config.run_dir + "/summary.json";
    dae::write_file_atomically(summary, summary_json(config, world.size(), fit, sweep));
    std::printf("outputs in %s: summary.json\n", config.run_dir.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dae::run_job(kProgram, argc, argv,
                      [&](dae::MpiComm& world) { return train(world, argc, argv); });
}
