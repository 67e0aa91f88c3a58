#include "dae/eval/quality.hpp"

#include <cmath>

#include "dae/eval/metrics.hpp"

namespace dae {

namespace {
constexpr std::int64_t kSsimWindow = 11;
}  // namespace

void QualitySums::add(const torch::Tensor& input, const torch::Tensor& output,
                      const torch::Tensor& clean) {
  const auto batch = [](const torch::Tensor& images) {
    return images.unsqueeze(1).to(torch::kFloat64);
  };
  const torch::Tensor x = batch(input), y = batch(output), target = batch(clean);
  images += static_cast<double>(clean.size(0));
  input_mse += per_image_mse(x, target).sum().item<double>();
  input_psnr += per_image_psnr(x, target).sum().item<double>();
  output_mse += per_image_mse(y, target).sum().item<double>();
  output_psnr += per_image_psnr(y, target).sum().item<double>();
  if (clean.size(1) < kSsimWindow || clean.size(2) < kSsimWindow) return;
  ssim_images += static_cast<double>(clean.size(0));
  input_ssim += per_image_ssim(x, target).sum().item<double>();
  output_ssim += per_image_ssim(y, target).sum().item<double>();
}

std::array<double, QualitySums::kValues> QualitySums::values() const {
  return {images, input_mse, input_psnr, output_mse, output_psnr, ssim_images, input_ssim,
          output_ssim};
}

QualitySums QualitySums::from_values(const double* values) {
  QualitySums sums;
  sums.images = values[0];
  sums.input_mse = values[1];
  sums.input_psnr = values[2];
  sums.output_mse = values[3];
  sums.output_psnr = values[4];
  sums.ssim_images = values[5];
  sums.input_ssim = values[6];
  sums.output_ssim = values[7];
  return sums;
}

QualitySums& QualitySums::operator+=(const QualitySums& other) {
  const auto mine = values(), theirs = other.values();
  std::array<double, kValues> total{};
  for (int i = 0; i < kValues; ++i) total[i] = mine[i] + theirs[i];
  return *this = from_values(total.data());
}

QualitySums::Means QualitySums::input_means() const {
  return {input_mse / images, input_psnr / images,
          ssim_images > 0 ? input_ssim / ssim_images : NAN};
}

QualitySums::Means QualitySums::output_means() const {
  return {output_mse / images, output_psnr / images,
          ssim_images > 0 ? output_ssim / ssim_images : NAN};
}

}  // namespace dae
