#include "dae/evaluator.hpp"

#include "dae/dataset.hpp"
#include "dae/noise.hpp"
#include "dae/trainer.hpp"

namespace dae {

namespace {
constexpr std::uint64_t kEvalNoiseStream = 2;
}  // namespace

std::vector<NoiseMetrics> evaluate_noise_sweep(ConvDae& model, Communicator& comm,
                                               const std::string& data_path,
                                               const std::vector<double>& levels,
                                               std::uint64_t seed, std::int64_t batch) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto total = static_cast<std::int64_t>(count_rows(data_path, "test"));
  const std::int64_t blocks = (total + batch - 1) / batch;
  const auto level_count = static_cast<std::int64_t>(levels.size());

  // Per level: sum of squared errors, then the number of pixels; reduced in float64.
  torch::Tensor sums = torch::zeros({level_count, 2}, torch::kFloat64);
  for (std::int64_t block = comm.rank(); block < blocks; block += comm.size()) {
    const std::int64_t first = block * batch;
    const std::int64_t rows = std::min(batch, total - first);
    const Shard part = Shard::read(data_path, "test", static_cast<std::uint64_t>(first),
                                   static_cast<std::uint64_t>(rows));
    const torch::Tensor clean = to_unit_float(part.images);
    for (std::int64_t level = 0; level < level_count; ++level) {
      NoiseSource noise(seed, static_cast<int>(level), kEvalNoiseStream + 1000 * block);
      const torch::Tensor denoised = model->forward(noise.corrupt(clean, levels[level]));
      sums[level][0] += (denoised - clean).pow(2).sum().to(torch::kFloat64).item<double>();
      sums[level][1] += static_cast<double>(clean.numel());
    }
  }
  comm.all_reduce_sum(sums);
  model->train();

  std::vector<NoiseMetrics> metrics;
  for (std::int64_t level = 0; level < level_count; ++level) {
    const double pixels = sums[level][1].item<double>();
    metrics.push_back({levels[level], sums[level][0].item<double>() / pixels,
                       static_cast<std::int64_t>(pixels) / (kImageSide * kImageSide)});
  }
  return metrics;
}

}  // namespace dae
