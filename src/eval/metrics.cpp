#include "dae/eval/metrics.hpp"

#include <algorithm>
#include <vector>

namespace dae {

namespace {

constexpr double kPsnrOfExactMatch = 100.0;  // 10 log10(1 / 1e-10)

// The 11-tap Gaussian (sigma 1.5) of SSIM, as a row [1, 1, 1, 11].
torch::Tensor gaussian_row(const torch::TensorOptions& options) {
  constexpr int kSize = 11;
  constexpr double kSigma = 1.5;
  const torch::Tensor x = torch::arange(kSize, options) - (kSize - 1) / 2.0;
  torch::Tensor g = torch::exp(-(x * x) / (2 * kSigma * kSigma));
  return (g / g.sum()).view({1, 1, 1, kSize});
}

}  // namespace

torch::Tensor per_image_mse(const torch::Tensor& output, const torch::Tensor& target) {
  return (output - target).pow(2).flatten(1).mean(1);
}

torch::Tensor per_image_psnr(const torch::Tensor& output, const torch::Tensor& target) {
  // An exact match (MSE 0, PSNR +inf) scores the cap; a NaN MSE stays NaN, never a top score.
  return (-10.0 * torch::log10(per_image_mse(output, target))).clamp_max(kPsnrOfExactMatch);
}

torch::Tensor per_image_ssim(const torch::Tensor& output_image, const torch::Tensor& target_image) {
  constexpr double kC1 = 0.01 * 0.01, kC2 = 0.03 * 0.03;
  // In slices of images: the float64 copies and blurred maps of a whole evaluation batch would
  // be the largest allocation of a CPU run.
  constexpr std::int64_t kSlice = 50;
  // The 11x11 window is separable: a row pass then a column pass (one 2-D pass unfolds 121
  // copies of every image, these two 11 each).
  const torch::Tensor row = gaussian_row(output_image.options().dtype(torch::kFloat64));
  const torch::Tensor column = row.transpose(2, 3);
  auto blur = [&](const torch::Tensor& image) {
    return torch::conv2d(torch::conv2d(image, row), column);
  };
  std::vector<torch::Tensor> slices;
  for (std::int64_t first = 0; first < output_image.size(0); first += kSlice) {
    const std::int64_t count = std::min(kSlice, output_image.size(0) - first);
    // Variances come from E[x^2] - E[x]^2, which cancels badly in float32 next to C2 = 9e-4.
    const torch::Tensor output = output_image.narrow(0, first, count).to(torch::kFloat64);
    const torch::Tensor target = target_image.narrow(0, first, count).to(torch::kFloat64);
    const torch::Tensor mu_x = blur(output), mu_y = blur(target);
    const torch::Tensor var_x = blur(output * output) - mu_x * mu_x;
    const torch::Tensor var_y = blur(target * target) - mu_y * mu_y;
    const torch::Tensor cov = blur(output * target) - mu_x * mu_y;
    const torch::Tensor map = ((2 * mu_x * mu_y + kC1) * (2 * cov + kC2)) /
                              ((mu_x * mu_x + mu_y * mu_y + kC1) * (var_x + var_y + kC2));
    slices.push_back(map.flatten(1).mean(1));
  }
  return torch::cat(slices).to(output_image.scalar_type());
}

}  // namespace dae
