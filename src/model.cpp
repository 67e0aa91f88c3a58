#include "dae/model.hpp"

namespace dae {

namespace {
// 'SAME' geometry for a 5x5 kernel at stride 2: padding 2 halves the side (28 -> 14 -> 7), and
// output_padding 1 makes the transposed convolutions double it exactly (7 -> 14 -> 28).
constexpr int kKernel = 5, kStride = 2, kPadding = 2, kOutputPadding = 1;
}  // namespace

ConvDaeImpl::ConvDaeImpl(const std::string& activation) : output_activation(activation) {
  using torch::nn::Conv2dOptions;
  using torch::nn::ConvTranspose2dOptions;
  encoder1 = register_module(
      "encoder1", torch::nn::Conv2d(Conv2dOptions(1, 16, kKernel).stride(kStride).padding(kPadding)));
  encoder2 = register_module(
      "encoder2",
      torch::nn::Conv2d(Conv2dOptions(16, 32, kKernel).stride(kStride).padding(kPadding)));
  decoder1 = register_module(
      "decoder1", torch::nn::ConvTranspose2d(ConvTranspose2dOptions(32, 16, kKernel)
                                                 .stride(kStride)
                                                 .padding(kPadding)
                                                 .output_padding(kOutputPadding)
                                                 .bias(false)));
  decoder2 = register_module(
      "decoder2", torch::nn::ConvTranspose2d(ConvTranspose2dOptions(16, 1, kKernel)
                                                 .stride(kStride)
                                                 .padding(kPadding)
                                                 .output_padding(kOutputPadding)
                                                 .bias(false)));
}

torch::Tensor ConvDaeImpl::encode(const torch::Tensor& images) {
  return torch::relu(encoder2(torch::relu(encoder1(images))));
}

torch::Tensor ConvDaeImpl::decode(const torch::Tensor& code) {
  torch::Tensor out = decoder2(torch::relu(decoder1(code)));
  if (output_activation == "relu") return torch::relu(out);
  if (output_activation == "sigmoid") return torch::sigmoid(out);
  return out;
}

std::int64_t count_parameters(torch::nn::Module& module) {
  std::int64_t total = 0;
  for (const auto& parameter : module.parameters()) total += parameter.numel();
  return total;
}

}  // namespace dae
