#include "dae/io/safetensors.hpp"

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>

#include "dae/core/error.hpp"

namespace dae {

namespace {

// The format is little endian whatever the machine writing it.
void append_little_endian(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// PyTorch's module names: what a reader rebuilds each layer with.
const char* kind_of(LayerOp op) {
  switch (op) {
    case LayerOp::kConv:
      return "Conv2d";
    case LayerOp::kConvTranspose:
      return "ConvTranspose2d";
  }
  return "?";
}

// The metadata is a flat string -> string map, so the layer list travels as one JSON text.
std::string layers_json(const NetworkSpec& network) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerSpec& layer : network.layers) {
    nlohmann::json entry = {{"name", layer.name},
                            {"kind", kind_of(layer.op)},
                            {"in_channels", layer.in_channels},
                            {"out_channels", layer.out_channels},
                            {"kernel_size", layer.kernel},
                            {"stride", layer.stride},
                            {"padding", layer.padding},
                            {"bias", layer.bias.has_value()},
                            {"activation", name_of(layer.activation)}};
    if (layer.op == LayerOp::kConvTranspose) entry["output_padding"] = layer.output_padding;
    layers.push_back(std::move(entry));
  }
  return layers.dump();
}

}  // namespace

std::string safetensors_bytes(const NetworkSpec& network) {
  DAE_CHECK(!network.layers.empty(), "safetensors: the network has no layer");
  check_weight_sizes(network);
  nlohmann::json header;
  header["__metadata__"] = {
      {"format", "pt"},  // what safetensors.torch writes: the shapes are PyTorch's
      {"producer", network.producer},
      {"step", std::to_string(network.step)},
      {"architecture", network.architecture},
      {"input_scaling", network.input_scaling},
      {"side_multiple", std::to_string(network.side_multiple)},
      {"output_activation", name_of(network.layers.back().activation)},
      {"layers", layers_json(network)}};
  std::string data;
  for (const LayerSpec& layer : network.layers) {
    for (const WeightSpec* weight : layer_weights(layer)) {
      const std::size_t begin = data.size();
      for (const float value : weight->values) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &value, sizeof bits);
        append_little_endian(data, bits, sizeof bits);
      }
      header[weight->name] = {
          {"dtype", "F32"}, {"shape", weight->shape}, {"data_offsets", {begin, data.size()}}};
    }
  }
  std::string text = header.dump();
  // The data must start 8-byte aligned; the format pads the header with spaces for that.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file;
  append_little_endian(file, text.size(), 8);
  return file + text + data;
}

}  // namespace dae
