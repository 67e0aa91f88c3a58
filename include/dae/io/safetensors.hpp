// defines: dae::safetensors_bytes (a NetworkSpec as a .safetensors file: its weights, with its
//          architecture in the header's __metadata__)
#pragma once

#include <string>

#include "dae/io/network_spec.hpp"

namespace dae {

// The whole file, built in memory for write_file_durably: the header's length (8 bytes, little
// endian), the JSON header padded with spaces to a multiple of 8 bytes, then every weight as
// little-endian F32 in layer order (weight, bias), under its LibTorch name and shape.
// __metadata__ (string -> string, as the format requires): format "pt", producer, step,
// architecture, input_scaling, side_multiple, output_activation, and layers: a JSON list with
// each layer's name, kind (Conv2d | ConvTranspose2d), channels, kernel_size, stride, padding,
// output_padding (transposed only), bias and activation, in order.
std::string safetensors_bytes(const NetworkSpec& network);

}  // namespace dae
