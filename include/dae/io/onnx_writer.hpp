// defines: dae::onnx_model_bytes (a NetworkSpec as an ONNX model, made with the ONNX project's
//          own protobuf classes)
#pragma once

#include <string>

#include "dae/io/network_spec.hpp"

namespace dae {

// The serialized ModelProto, built in memory for write_file_durably: ONNX opset 17, IR version
// 8; graph input "input" [batch, C, height, width] float32 and output "output", with "batch",
// "height" and "width" symbolic (the doc_string says which sides the network keeps); one Conv
// or ConvTranspose node per layer (its weights as float initializers under their LibTorch
// names) and a Relu or Sigmoid node after it where the layer has that activation. metadata_props:
// producer, step, input_scaling.
std::string onnx_model_bytes(const NetworkSpec& network);

}  // namespace dae
