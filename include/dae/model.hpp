// defines: dae::ConvDae (the seed's convolutional denoising autoencoder), dae::count_parameters
#pragma once

#include <torch/torch.h>

#include <string>

namespace dae {

// The seed network: 28x28 -> conv 5x5/2 (1->16) -> 14x14 -> conv 5x5/2 (16->32) -> 7x7x32 code
// -> transposed conv 5x5/2 (32->16, no bias) -> 14x14 -> transposed conv 5x5/2 (16->1, no bias)
// -> 28x28, ReLU after every layer (the last one configurable). 26 448 parameters.
struct ConvDaeImpl : torch::nn::Module {
  explicit ConvDaeImpl(const std::string& output_activation = "relu");

  torch::Tensor encode(const torch::Tensor& images);  // [B,1,28,28] -> code [B,32,7,7]
  torch::Tensor decode(const torch::Tensor& code);    // [B,32,7,7] -> [B,1,28,28]
  torch::Tensor forward(const torch::Tensor& images) { return decode(encode(images)); }

  torch::nn::Conv2d encoder1{nullptr}, encoder2{nullptr};
  torch::nn::ConvTranspose2d decoder1{nullptr}, decoder2{nullptr};
  std::string output_activation;
};
TORCH_MODULE(ConvDae);

std::int64_t count_parameters(torch::nn::Module& module);

}  // namespace dae
