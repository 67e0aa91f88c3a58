#include "dae/eval/sweep.hpp"

#include <algorithm>
#include <memory>

#include "dae/data/dataset.hpp"
#include "dae/data/noise.hpp"
#include "dae/eval/metrics.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/idx.hpp"
#include "dae/model/fused_conv_dae.hpp"

namespace dae {

TestSetResult evaluate_test_set(Denoiser& model, Communicator& comm, const Config& config) {
  torch::NoGradGuard no_grad;
  model.eval();
  const NoiseType type = config.noise_type;
  const torch::Device device = device_of(model);
  const auto total = static_cast<std::int64_t>(count_rows(config.data, "test"));
  const std::int64_t batch = config.eval_batch;
  const std::int64_t blocks = (total + batch - 1) / batch;
  const auto level_count = static_cast<std::int64_t>(config.eval_noise.size());
  // The conv model on the CPU runs through the fused kernels, a training batch at a time: faster,
  // and without LibTorch's per-layer buffers for a whole evaluation batch (≈ 200 MB at 500).
  const std::unique_ptr<FusedConvDaeStep> fused =
      make_fused_step(config, model, std::min(config.batch_size, batch));

  // Per level: sums of squared error, pixels, PSNR, SSIM and images; reduced in float64.
  torch::Tensor sums = torch::zeros({level_count, 5}, torch::kFloat64);  // on the host
  // Per level, how many blocks each channel was alive in, summed over ranks: dead where 0.
  std::vector<DeadChannels> layout;
  const std::int64_t channels =
      channel_peaks(model, torch::zeros({1, 1, kImageSide, kImageSide}, device), &layout).size(0);
  torch::Tensor alive =
      torch::zeros({level_count, channels}, torch::dtype(torch::kFloat32).device(device));
  const H5File file = H5File::open_read_only(config.data);  // count_rows checked its layout
  for (std::int64_t block = comm.rank(); block < blocks; block += comm.size()) {
    const std::int64_t first = block * batch;
    const std::int64_t rows = std::min(batch, total - first);
    torch::Tensor images = torch::empty({rows, kImageSide, kImageSide}, torch::kUInt8);
    file.read_rows("/test/images", static_cast<std::uint64_t>(first),
                   static_cast<std::uint64_t>(rows), images.data_ptr<std::uint8_t>());
    const torch::Tensor clean = to_unit_float(images.to(device));
    for (std::int64_t level = 0; level < level_count; ++level) {
      NoiseSource noise(static_cast<std::uint64_t>(config.seed), static_cast<int>(level),
                        kEvalNoiseStream + 1000 * static_cast<std::uint64_t>(block), type,
                        device);
      const torch::Tensor noisy = noise.corrupt(clean, config.eval_noise[level]);
      torch::Tensor peaks;
      const torch::Tensor denoised = fused ? fused->forward(noisy, &peaks) : model.forward(noisy);
      if (!fused) peaks = channel_peaks(model, noisy);  // LibTorch's forward, once more
      alive[level].add_(peaks.gt(0).to(torch::kFloat32));
      const torch::Tensor shown = denoised.clamp(0, 1);
      auto sum = sums.accessor<double, 2>()[level];
      sum[0] += (denoised - clean).pow(2).sum().item<double>();
      sum[1] += static_cast<double>(clean.numel());
      sum[2] += per_image_psnr(shown, clean).sum().item<double>();
      sum[3] += per_image_ssim(shown, clean).sum().item<double>();
      sum[4] += static_cast<double>(rows);
    }
  }
  // The communicator reduces on its own device (NCCL: the GPU).
  torch::Tensor reduced = sums.to(device);
  comm.all_reduce_sum(reduced);
  sums = reduced.cpu();
  comm.all_reduce_sum(alive);
  model.train();

  TestSetResult result;
  for (std::int64_t level = 0; level < level_count; ++level) {
    const auto row = sums[level];
    const double images = row[4].item<double>();
    const std::vector<DeadChannels> dead = dead_channels(alive[level], layout);
    result.metrics.push_back({config.eval_noise[level],
                              row[0].item<double>() / row[1].item<double>(),
                              row[2].item<double>() / images, row[3].item<double>() / images,
                              static_cast<std::int64_t>(images), total_dead(dead)});
    if (config.eval_noise[level] == 0) result.dead = dead;
  }
  return result;
}

}  // namespace dae
