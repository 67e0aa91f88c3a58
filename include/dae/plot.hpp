// defines: dae::plot_loss (the training-loss curve with test-MSE points, as a PNG, via MathGL)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dae {

// Training loss against step on a log scale, with the clean test MSE of each evaluation as
// points. Writes `path` through a temporary file; throws dae::Error if MathGL cannot write it.
void plot_loss(const std::string& path,
               const std::vector<std::pair<std::int64_t, double>>& train_loss,
               const std::vector<std::pair<std::int64_t, double>>& test_mse);

}  // namespace dae
