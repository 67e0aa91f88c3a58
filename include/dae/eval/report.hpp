// defines: dae::EvalReport (rank 0: RUN_DIR/eval, every evaluation of the run: grids, code
//          layer, metrics.csv, eval.h5, loss.png, sweep.png, report.html, TensorBoard)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/eval/sweep.hpp"
#include "dae/model/model.hpp"

namespace dae {

class TensorBoardWriter;

// Writes RUN_DIR/eval/: grid_<type>_<level>.png (rows clean, noisy, denoised; one test digit of
// each class, the same at every level), code_layer.png, metrics.csv and eval.h5 (every
// evaluation of the run), loss.png, sweep.png and report.html. Rank 0 only; not collective.
class EvalReport {
 public:
  // `continue_history`: keep the rows of an earlier part of this run (a resumed run).
  EvalReport(const Config& config, bool continue_history);
  // Adds this evaluation (at `step`) to the history and rewrites every output.
  void add(Denoiser& model, std::int64_t step, const TestSetResult& result,
           const std::vector<std::pair<std::int64_t, double>>& loss_history);
  // Each evaluation's MSE/PSNR/SSIM per noise level and its grids also go to TensorBoard.
  void set_tensorboard(TensorBoardWriter* writer) { tensorboard_ = writer; }

 private:
  struct Row {
    std::int64_t step;
    NoiseMetrics metrics;  // dead_channels -1: unknown (a file of an older version)
  };
  void load_history(std::int64_t before_step);
  void write_outputs(Denoiser& model, std::int64_t step,
                     const std::vector<std::pair<std::int64_t, double>>& loss_history);
  std::string write_grids(Denoiser& model, std::int64_t step);  // the report's grid section
  void write_code_layer(Denoiser& model);
  void write_tables();

  const Config& config_;
  std::string directory_;
  bool continue_history_;
  bool history_loaded_ = false;
  std::vector<Row> history_;
  std::vector<DeadChannels> dead_;  // the last evaluation's, per ReLU layer
  TensorBoardWriter* tensorboard_ = nullptr;  // not owned
};

}  // namespace dae
