// defines: dae::QualitySums (MSE, PSNR and SSIM of corrupted images and of a network's output
//          against the clean ones, summed over images so that ranks can add theirs)
#pragma once

#include <torch/torch.h>

#include <array>

namespace dae {

struct QualitySums {
  static constexpr int kValues = 8;  // the fields below, in order: what ranks all-reduce

  double images = 0;
  double input_mse = 0, input_psnr = 0, output_mse = 0, output_psnr = 0;
  // SSIM's 11 x 11 window needs images of at least 11 x 11: summed over those only.
  double ssim_images = 0, input_ssim = 0, output_ssim = 0;

  // Adds images [N, H, W]: `input` (the corrupted images the network saw) and `output` against
  // `clean`, per image (per_image_mse / psnr / ssim in float64).
  void add(const torch::Tensor& input, const torch::Tensor& output, const torch::Tensor& clean);

  std::array<double, kValues> values() const;
  static QualitySums from_values(const double* values);
  QualitySums& operator+=(const QualitySums& other);

  // Means over the images (SSIM: NaN when no image was large enough).
  struct Means {
    double mse, psnr, ssim;
  };
  Means input_means() const;
  Means output_means() const;
};

}  // namespace dae
