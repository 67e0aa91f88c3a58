// defines: dae::per_image_mse, dae::per_image_psnr, dae::per_image_ssim (image-quality metrics)
#pragma once

#include <torch/torch.h>

namespace dae {

// All take images [B, 1, H, W] with values in [0, 1] and return one value per image, [B].
torch::Tensor per_image_mse(const torch::Tensor& output, const torch::Tensor& target);
// 10 log10(1 / MSE) in dB for a data range of 1; an exact match counts as 100 dB.
torch::Tensor per_image_psnr(const torch::Tensor& output, const torch::Tensor& target);
// Structural similarity (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
// data range 1, averaged over the valid (unpadded) window positions; computed in float64.
torch::Tensor per_image_ssim(const torch::Tensor& output, const torch::Tensor& target);

}  // namespace dae
