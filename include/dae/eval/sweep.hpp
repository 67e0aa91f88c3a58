// defines: dae::NoiseMetrics, dae::TestSetResult, dae::evaluate_test_set (the test set's metrics
//          across noise levels and its dead channels: collective, the same on every rank)
#pragma once

#include <cstdint>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/dist/communicator.hpp"
#include "dae/model/model.hpp"

namespace dae {

struct NoiseMetrics {
  double noise = 0;         // test corruption level
  double mse = 0;           // mean squared error of the raw outputs against the clean images
  double psnr = 0;          // mean per-image PSNR in dB of the outputs clipped to [0, 1]
  double ssim = 0;          // mean per-image SSIM of the outputs clipped to [0, 1]
  std::int64_t images = 0;  // test images evaluated
  std::int64_t dead_channels = 0;  // ReLU channels 0 for every test image at this level
};

struct TestSetResult {
  std::vector<NoiseMetrics> metrics;  // one per config.eval_noise level, in its order
  // Per ReLU layer: channels 0 for every clean test image (the level 0 that parsing always adds
  // to eval-noise; empty without it).
  std::vector<DeadChannels> dead;
};

// Denoises the whole /test split of config.data at every config.eval_noise level, sharded
// across ranks in blocks of config.eval_batch rows (block b on rank b mod world) and reduced, so
// every rank gets the same numbers. Each block's noise is seeded by (seed, level index, block),
// so the result does not depend on the number of ranks. Each block is read once (one open of
// the data file per call). The dead channels are counted at every level from the same forward
// passes (at level 0, on the clean images: the per-layer counts of `dead`).
TestSetResult evaluate_test_set(Denoiser& model, Communicator& comm, const Config& config);

}  // namespace dae
