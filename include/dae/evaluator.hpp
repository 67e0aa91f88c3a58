// defines: dae::NoiseMetrics, dae::evaluate_noise_sweep (test-set MSE across noise levels)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dae/communicator.hpp"
#include "dae/model.hpp"

namespace dae {

struct NoiseMetrics {
  double noise = 0;         // test noise coefficient
  double mse = 0;           // mean squared error of the denoised images against the clean ones
  std::int64_t images = 0;  // test images evaluated
};

// Denoises the whole /test split of `data_path` at every level, sharded across ranks in blocks
// of `batch` rows (block b on rank b mod world) and reduced, so every rank gets the same numbers.
// Each block's noise is seeded by (seed, level index, block), so the result does not depend on
// the number of ranks.
std::vector<NoiseMetrics> evaluate_noise_sweep(ConvDae& model, Communicator& comm,
                                               const std::string& data_path,
                                               const std::vector<double>& levels,
                                               std::uint64_t seed, std::int64_t batch);

}  // namespace dae
