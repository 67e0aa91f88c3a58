// defines: dae::plot_loss (the training-loss curve with test-MSE points), dae::SweepCurve,
//          dae::plot_sweep (test metrics against the noise level) — PNGs drawn with MathGL
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dae {

// Training loss against step on a log scale, with the clean test MSE of each evaluation as
// points. Written with write_file_durably; throws dae::Error naming `path`.
void plot_loss(const std::string& path,
               const std::vector<std::pair<std::int64_t, double>>& train_loss,
               const std::vector<std::pair<std::int64_t, double>>& test_mse);

// One evaluation's metrics over the noise levels (ascending).
struct SweepCurve {
  std::string label;  // e.g. "step 2000"
  std::vector<double> noise, mse, psnr, ssim;
};

// Three panels — test MSE (log scale), PSNR and SSIM against the noise level — one curve per
// evaluation (the last one drawn thickest), the training noise level marked by a vertical line.
void plot_sweep(const std::string& path, const std::vector<SweepCurve>& curves,
                double train_noise);

}  // namespace dae
