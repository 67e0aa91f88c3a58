// defines: dae::export_spec (the conv network as the NetworkSpec the ONNX and safetensors
//          writers take)
#pragma once

#include "dae/io/network_spec.hpp"
#include "dae/model/model.hpp"

namespace dae {

// How the training data turns 8-bit pixels into the network's input (data/: bytes / 255).
inline constexpr const char* kInputScaling = "pixel / 255 (8-bit) → [0,1]";

// `model`'s layers in forward order: each one's options as its module holds them, the
// activation encode()/decode() apply after it, and a float32 copy of its parameters under their
// named_parameters() names. Fills architecture, side_multiple and input_scaling; producer and
// step are the caller's. Throws dae::Error if the model has a parameter the spec would leave
// out, or a layer option the spec cannot express (groups, dilation, padding mode).
NetworkSpec export_spec(ConvDaeImpl& model);

}  // namespace dae
