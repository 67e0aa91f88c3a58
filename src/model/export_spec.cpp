#include "dae/model/export_spec.hpp"

#include <variant>

#include "dae/core/error.hpp"

namespace dae {

namespace {

using ConvOptions = torch::nn::detail::ConvNdOptions<2>;

std::vector<std::int64_t> sides(torch::IntArrayRef values) { return values.vec(); }

WeightSpec weight_of(const torch::OrderedDict<std::string, torch::Tensor>& parameters,
                     const std::string& name) {
  const torch::Tensor* found = parameters.find(name);
  DAE_CHECK(found != nullptr, "export: the model has no parameter " + name);
  const torch::Tensor value = found->detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const float* first = value.data_ptr<float>();
  return {name, value.sizes().vec(), std::vector<float>(first, first + value.numel())};
}

LayerSpec describe(const std::string& name, const ConvOptions& options, Activation activation,
                   const torch::OrderedDict<std::string, torch::Tensor>& parameters) {
  const auto* padding = std::get_if<torch::ExpandingArray<2>>(&options.padding());
  const auto dilation = sides(options.dilation());
  DAE_CHECK(padding != nullptr && options.groups() == 1 &&
                dilation == std::vector<std::int64_t>({1, 1}) &&
                std::holds_alternative<torch::enumtype::kZeros>(options.padding_mode()),
            "export: " + name + ": only explicit zero padding, one group and dilation 1 export");
  LayerSpec layer;
  layer.name = name;
  layer.op = options.transposed() ? LayerOp::kConvTranspose : LayerOp::kConv;
  layer.in_channels = options.in_channels();
  layer.out_channels = options.out_channels();
  layer.kernel = sides(options.kernel_size());
  layer.stride = sides(options.stride());
  layer.padding = sides(*padding);
  if (options.transposed()) layer.output_padding = sides(options.output_padding());
  layer.activation = activation;
  layer.weight = weight_of(parameters, name + ".weight");
  if (options.bias()) layer.bias = weight_of(parameters, name + ".bias");
  return layer;
}

}  // namespace

NetworkSpec export_spec(ConvDaeImpl& model) {
  const auto parameters = model.named_parameters();
  NetworkSpec network;
  network.architecture = "conv_dae";
  network.input_scaling = kInputScaling;
  // The activations ConvDaeImpl::encode and decode apply: ReLU after every layer but the last.
  network.layers = {
      describe("encoder1", model.encoder1->options, Activation::kRelu, parameters),
      describe("encoder2", model.encoder2->options, Activation::kRelu, parameters),
      describe("decoder1", model.decoder1->options, Activation::kRelu, parameters),
      describe("decoder2", model.decoder2->options, model.output_activation, parameters)};
  std::size_t described = 0;
  for (const LayerSpec& layer : network.layers) {
    described += layer_weights(layer).size();
    // Each strided convolution divides the sides by its stride, which the transposed ones
    // multiply back: only sides divisible by every such stride come out as they went in.
    if (layer.op == LayerOp::kConv) network.side_multiple *= layer.stride.front();
  }
  DAE_CHECK(described == parameters.size(),
            "export: the conv model has " + std::to_string(parameters.size()) +
                " parameters, the export describes " + std::to_string(described));
  return network;
}

}  // namespace dae
