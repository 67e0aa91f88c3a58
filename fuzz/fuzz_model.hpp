// defines: dae::fuzz::TinyDae (the model whose checkpoints the checkpoint fuzz target loads)
#pragma once

#include <torch/torch.h>

namespace dae::fuzz {

// ConvDae's layer kinds and names at a tenth of a kilobyte: conv (1->2, 3x3) with bias and a
// transposed conv (2->1, 3x3) without, as in the real decoder.
struct TinyDae : torch::nn::Module {
  TinyDae() {
    encoder1 = register_module(
        "encoder1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3).stride(2).padding(1)));
    decoder1 = register_module(
        "decoder1", torch::nn::ConvTranspose2d(
                        torch::nn::ConvTranspose2dOptions(2, 1, 3).stride(2).bias(false)));
  }
  torch::nn::Conv2d encoder1{nullptr};
  torch::nn::ConvTranspose2d decoder1{nullptr};
};

}  // namespace dae::fuzz
