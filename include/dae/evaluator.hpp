// defines: dae::NoiseMetrics, dae::evaluate_noise_sweep (test-set metrics across noise levels),
//          dae::Evaluator (the sweep plus RUN_DIR/eval: grids, code layer, metrics, plot, report)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dae/communicator.hpp"
#include "dae/config.hpp"
#include "dae/model.hpp"
#include "dae/train_state.hpp"

namespace dae {

class TensorBoardWriter;

struct NoiseMetrics {
  double noise = 0;         // test corruption level
  double mse = 0;           // mean squared error of the raw outputs against the clean images
  double psnr = 0;          // mean per-image PSNR in dB of the outputs clipped to [0, 1]
  double ssim = 0;          // mean per-image SSIM of the outputs clipped to [0, 1]
  std::int64_t images = 0;  // test images evaluated
};

// Denoises the whole /test split of config.data at every config.eval_noise level, sharded
// across ranks in blocks of config.eval_batch rows (block b on rank b mod world) and reduced, so
// every rank gets the same numbers. Each block's noise is seeded by (seed, level index, block),
// so the result does not depend on the number of ranks.
std::vector<NoiseMetrics> evaluate_noise_sweep(Denoiser& model, Communicator& comm,
                                               const Config& config);
// The ReLU channels whose output is 0 for every clean test image (collective, sharded like the
// sweep; the same on every rank).
std::vector<DeadChannels> dead_channels_on_test_set(Denoiser& model, Communicator& comm,
                                                    const Config& config);

// Runs the sweep and, on rank 0, writes RUN_DIR/eval/: grid_<type>_<level>.png (rows clean,
// noisy, denoised; one test digit of each class, the same at every level), code_layer.png,
// metrics.csv and eval.h5 (every evaluation of the run), loss.png and report.html.
class Evaluator {
 public:
  // `continue_history`: keep the rows of an earlier part of this run (a resumed run).
  Evaluator(const Config& config, Communicator& comm, bool continue_history);
  // Collective. Returns this evaluation's metrics.
  std::vector<NoiseMetrics> evaluate(Denoiser& model, const TrainState& state);
  // Rank 0: each evaluation's MSE/PSNR/SSIM per noise level and its grids also go to TensorBoard.
  void set_tensorboard(TensorBoardWriter* writer) { tensorboard_ = writer; }

 private:
  struct Row {
    std::int64_t step;
    NoiseMetrics metrics;
    std::int64_t dead_channels;  // of the model at that step, on the clean test set; -1: unknown
  };
  void load_history(std::int64_t before_step);
  void write_outputs(Denoiser& model, const TrainState& state);
  std::string write_grids(Denoiser& model, std::int64_t step);  // the report's grid section
  void write_code_layer(Denoiser& model);
  void write_tables();

  const Config& config_;
  Communicator& comm_;
  std::string directory_;
  bool continue_history_;
  bool history_loaded_ = false;
  std::vector<Row> history_;  // rank 0 only
  std::vector<DeadChannels> dead_;  // this evaluation's, per ReLU layer
  TensorBoardWriter* tensorboard_ = nullptr;  // rank 0 only; not owned
};

}  // namespace dae
