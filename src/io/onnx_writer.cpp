#include "dae/io/onnx_writer.hpp"

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dae/core/error.hpp"

namespace dae {

namespace {

constexpr std::int64_t kOpset = 17;
// The IR version of ONNX 1.12, the release that brought opset 17 (Debian's libonnx-dev is 1.12):
// named here rather than taken from onnx::IR_VERSION so that a newer libonnx-dev writes the same
// file, which every onnxruntime since 1.12 reads.
constexpr std::int64_t kIrVersion = 8;
constexpr const char* kInput = "input";
constexpr const char* kOutput = "output";

void add_ints(onnx::NodeProto& node, const std::string& name,
              const std::vector<std::int64_t>& values) {
  onnx::AttributeProto& attribute = *node.add_attribute();
  attribute.set_name(name);
  attribute.set_type(onnx::AttributeProto::INTS);
  for (const std::int64_t value : values) attribute.add_ints(value);
}

void add_initializer(onnx::GraphProto& graph, const WeightSpec& weight) {
  onnx::TensorProto& tensor = *graph.add_initializer();
  tensor.set_name(weight.name);
  tensor.set_data_type(onnx::TensorProto::FLOAT);
  for (const std::int64_t side : weight.shape) tensor.add_dims(side);
  // float_data: protobuf itself writes these little endian, as ONNX requires.
  tensor.mutable_float_data()->Add(weight.values.begin(), weight.values.end());
}

// A float32 [batch, channels, height, width] graph input or output.
void add_image_value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& values,
                     const std::string& name, std::int64_t channels) {
  onnx::ValueInfoProto& value = *values.Add();
  value.set_name(name);
  onnx::TypeProto_Tensor& tensor = *value.mutable_type()->mutable_tensor_type();
  tensor.set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto& shape = *tensor.mutable_shape();
  shape.add_dim()->set_dim_param("batch");
  shape.add_dim()->set_dim_value(channels);
  shape.add_dim()->set_dim_param("height");
  shape.add_dim()->set_dim_param("width");
}

// The layer's convolution node, reading `from`; returns the name of its output.
std::string add_layer(onnx::GraphProto& graph, const LayerSpec& layer, const std::string& from) {
  onnx::NodeProto& node = *graph.add_node();
  node.set_name(layer.name);
  node.set_op_type(layer.op == LayerOp::kConv ? "Conv" : "ConvTranspose");
  node.add_input(from);
  for (const WeightSpec* weight : layer_weights(layer)) {
    node.add_input(weight->name);
    add_initializer(graph, *weight);
  }
  node.add_output(layer.name);
  add_ints(node, "kernel_shape", layer.kernel);
  add_ints(node, "strides", layer.stride);
  // ONNX lists every side's start padding, then every side's end padding.
  std::vector<std::int64_t> pads = layer.padding;
  pads.insert(pads.end(), layer.padding.begin(), layer.padding.end());
  add_ints(node, "pads", pads);
  if (layer.op == LayerOp::kConvTranspose) add_ints(node, "output_padding", layer.output_padding);
  return layer.name;
}

std::string add_activation(onnx::GraphProto& graph, const LayerSpec& layer,
                           const std::string& from) {
  if (layer.activation == Activation::kNone) return from;
  onnx::NodeProto& node = *graph.add_node();
  const std::string name = layer.name + "_" + name_of(layer.activation);
  node.set_name(name);
  node.set_op_type(layer.activation == Activation::kRelu ? "Relu" : "Sigmoid");
  node.add_input(from);
  node.add_output(name);
  return name;
}

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto& entry = *model.add_metadata_props();
  entry.set_key(key);
  entry.set_value(value);
}

}  // namespace

std::string onnx_model_bytes(const NetworkSpec& network) {
  DAE_CHECK(!network.layers.empty(), "onnx: the network has no layer");
  check_weight_sizes(network);
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.add_opset_import()->set_version(kOpset);  // the default domain, ai.onnx
  model.set_producer_name(network.producer);
  const std::string side = std::to_string(network.side_multiple);
  model.set_doc_string(network.architecture + ", trained " + std::to_string(network.step) +
                       " steps. input: [batch, " +
                       std::to_string(network.layers.front().in_channels) +
                       ", height, width] float32, " + network.input_scaling +
                       "; height and width must be multiples of " + side +
                       ", and output then has the input's shape.");
  add_metadata(model, "producer", network.producer);
  add_metadata(model, "step", std::to_string(network.step));
  add_metadata(model, "input_scaling", network.input_scaling);

  onnx::GraphProto& graph = *model.mutable_graph();
  graph.set_name(network.architecture);
  graph.set_doc_string("height and width must be multiples of " + side);
  add_image_value(*graph.mutable_input(), kInput, network.layers.front().in_channels);
  add_image_value(*graph.mutable_output(), kOutput, network.layers.back().out_channels);
  std::string value = kInput;
  for (const LayerSpec& layer : network.layers)
    value = add_activation(graph, layer, add_layer(graph, layer, value));
  // The last node writes the graph's output.
  graph.mutable_node(graph.node_size() - 1)->set_output(0, kOutput);

  std::string bytes;
  DAE_CHECK(model.SerializeToString(&bytes), "onnx: the model could not be serialized");
  return bytes;
}

}  // namespace dae
