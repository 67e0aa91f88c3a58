// defines: dae::NetworkSpec, dae::LayerSpec, dae::WeightSpec, dae::LayerOp (a trained
//          feed-forward convolutional network as the export writers see it: shapes, attributes
//          and float weights, no LibTorch), dae::layer_weights, dae::check_weight_sizes
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/core/error.hpp"

namespace dae {

enum class LayerOp { kConv, kConvTranspose };  // 2-D, one group, dilation 1

struct WeightSpec {
  std::string name;                 // as named_parameters() names it: "encoder1.weight"
  std::vector<std::int64_t> shape;  // LibTorch's: conv [out,in,kh,kw], transposed [in,out,kh,kw]
  std::vector<float> values;        // row-major, the product of `shape` many
};

struct LayerSpec {
  std::string name;  // the module: "encoder1"
  LayerOp op = LayerOp::kConv;
  std::int64_t in_channels = 0, out_channels = 0;
  std::vector<std::int64_t> kernel, stride;   // [h, w]
  std::vector<std::int64_t> padding;          // [h, w], on both sides
  std::vector<std::int64_t> output_padding;   // [h, w], transposed convolutions only
  Activation activation = Activation::kNone;  // applied to the layer's output
  WeightSpec weight;
  std::optional<WeightSpec> bias;  // [out_channels]
};

struct NetworkSpec {
  std::string architecture;       // "conv_dae"
  std::vector<LayerSpec> layers;  // applied in order to [batch, in_channels, height, width]
  // Height and width must be multiples of this for the output to have the input's size.
  std::int64_t side_multiple = 1;
  std::string input_scaling;  // how image pixels become inputs
  std::string producer;       // the program that wrote the file
  std::int64_t step = 0;      // the optimizer steps behind the weights
};

// Every weight of `layer` (weight, then bias if any): the order the files store them in.
inline std::vector<const WeightSpec*> layer_weights(const LayerSpec& layer) {
  std::vector<const WeightSpec*> weights = {&layer.weight};
  if (layer.bias) weights.push_back(&*layer.bias);
  return weights;
}

// Throws dae::Error naming the first weight whose values do not fill its shape exactly (the
// writers check first: a file whose shapes and data disagree is corrupt).
inline void check_weight_sizes(const NetworkSpec& network) {
  for (const LayerSpec& layer : network.layers)
    for (const WeightSpec* weight : layer_weights(layer)) {
      std::int64_t count = 1;
      for (const std::int64_t side : weight->shape) count *= side;
      DAE_CHECK(count == static_cast<std::int64_t>(weight->values.size()),
                weight->name + ": " + std::to_string(weight->values.size()) +
                    " values for a shape of " + std::to_string(count));
    }
}

}  // namespace dae
