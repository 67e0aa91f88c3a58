#include "dae/model/model.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#include "dae/core/config.hpp"
#include "dae/core/error.hpp"

namespace dae {

namespace {
// 'SAME' geometry for a 5x5 kernel at stride 2: padding 2 halves the side (28 -> 14 -> 7), and
// output_padding 1 makes the transposed convolutions double it exactly (7 -> 14 -> 28).
constexpr int kKernel = 5, kStride = 2, kPadding = 2, kOutputPadding = 1;
constexpr int kPixels = 28 * 28, kMlpCode = 16;

// LibTorch's layers and init functions draw from its global CPU generator. This seeds it for the
// guard's life and then puts back the state it had, so nothing else sees the draws.
class SeededGlobalGenerator {
 public:
  explicit SeededGlobalGenerator(std::uint64_t seed)
      : generator_(at::detail::getDefaultCPUGenerator()) {
    const std::lock_guard<std::mutex> lock(generator_.mutex());
    saved_ = generator_.get_state();
    generator_.set_current_seed(seed);
  }
  ~SeededGlobalGenerator() {
    const std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_state(saved_);
  }
  SeededGlobalGenerator(const SeededGlobalGenerator&) = delete;
  SeededGlobalGenerator& operator=(const SeededGlobalGenerator&) = delete;

 private:
  at::Generator generator_;
  at::Tensor saved_;
};
}  // namespace

torch::Tensor Denoiser::activate_output(const torch::Tensor& out) const {
  if (output_activation == Activation::kRelu) return torch::relu(out);
  if (output_activation == Activation::kSigmoid) return torch::sigmoid(out);
  return out;
}

ConvDaeImpl::ConvDaeImpl(Activation activation) : Denoiser(activation) {
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
  return activate_output(decoder2(torch::relu(decoder1(code))));
}

std::vector<ReluLayer> ConvDaeImpl::relu_layers(const torch::Tensor& images) {
  std::vector<ReluLayer> layers;
  layers.push_back({"encoder1", torch::relu(encoder1(images))});
  layers.push_back({"encoder2", torch::relu(encoder2(layers.back().activation))});
  layers.push_back({"decoder1", torch::relu(decoder1(layers.back().activation))});
  if (output_activation == Activation::kRelu)
    layers.push_back({"output", torch::relu(decoder2(layers.back().activation))});
  return layers;
}

std::vector<ChannelWiring> ConvDaeImpl::channel_wiring() const {
  // Conv2d weights are [out, in, k, k]; ConvTranspose2d weights [in, out, k, k].
  std::vector<ChannelWiring> wiring = {
      {"encoder1", {{"encoder1.weight", 0}, {"encoder1.bias", 0}}, {{"encoder2.weight", 1}}},
      {"encoder2", {{"encoder2.weight", 0}, {"encoder2.bias", 0}}, {{"decoder1.weight", 0}}},
      {"decoder1", {{"decoder1.weight", 1}}, {{"decoder2.weight", 0}}}};
  if (output_activation == Activation::kRelu)
    wiring.push_back({"output", {{"decoder2.weight", 1}}, {}});
  return wiring;
}

MlpDaeImpl::MlpDaeImpl(Activation activation) : Denoiser(activation) {
  encoder = register_module("encoder", torch::nn::Linear(kPixels, kMlpCode));
  decoder = register_module("decoder", torch::nn::Linear(kMlpCode, kPixels));
}

torch::Tensor MlpDaeImpl::encode(const torch::Tensor& images) {
  return torch::relu(encoder(images.flatten(1)));
}

torch::Tensor MlpDaeImpl::decode(const torch::Tensor& code) {
  return activate_output(decoder(code)).view({-1, 1, 28, 28});
}

std::vector<ReluLayer> MlpDaeImpl::relu_layers(const torch::Tensor& images) {
  std::vector<ReluLayer> layers;
  layers.push_back({"encoder", torch::relu(encoder(images.flatten(1)))});
  if (output_activation == Activation::kRelu)
    layers.push_back({"output", torch::relu(decoder(layers.back().activation))});
  return layers;
}

std::vector<ChannelWiring> MlpDaeImpl::channel_wiring() const {
  // Linear weights are [out, in].
  std::vector<ChannelWiring> wiring = {
      {"encoder", {{"encoder.weight", 0}, {"encoder.bias", 0}}, {{"decoder.weight", 1}}}};
  if (output_activation == Activation::kRelu)
    wiring.push_back({"output", {{"decoder.weight", 0}, {"decoder.bias", 0}}, {}});
  return wiring;
}

void init_xavier(torch::nn::Module& module, double bias) {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) {
    if (item.value().dim() > 1)
      torch::nn::init::xavier_uniform_(item.value());
    else
      item.value().fill_(bias);
  }
}

void init_truncated_normal(torch::nn::Module& module, double stddev, double bias) {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) {
    torch::Tensor value = item.value();
    if (value.dim() <= 1) {
      value.fill_(bias);
      continue;
    }
    // tf.truncated_normal draws again every value beyond two standard deviations.
    value.normal_(0.0, stddev);
    for (torch::Tensor outside = value.abs() > 2 * stddev; outside.any().item<bool>();
         outside = value.abs() > 2 * stddev)
      value.masked_scatter_(outside, torch::randn({outside.sum().item<std::int64_t>()},
                                                  value.options()) *
                                         stddev);
  }
}

ModelPtr make_model(const ModelOptions& options) {
  ModelPtr model;
  switch (options.kind) {
    case ModelKind::kConv: model = ConvDae(options.output_activation).ptr(); break;
    case ModelKind::kMlp: model = MlpDae(options.output_activation).ptr(); break;
  }
  switch (options.init) {
    case InitKind::kXavier: init_xavier(*model, options.init_bias); break;
    case InitKind::kTruncatedNormal:
      init_truncated_normal(*model, kSeedWeightStddev, options.init_bias);
      break;
    case InitKind::kTorch: break;  // LibTorch's own, drawn as the layers were made
  }
  return model;
}

ModelPtr make_seeded_model(const ModelOptions& options, std::uint64_t seed) {
  const SeededGlobalGenerator seeded(seed);
  return make_model(options);
}

torch::Device device_of(torch::nn::Module& module) {
  return module.parameters().front().device();
}

std::int64_t count_parameters(torch::nn::Module& module) {
  std::int64_t total = 0;
  for (const auto& parameter : module.parameters()) total += parameter.numel();
  return total;
}

torch::Tensor channel_peaks(Denoiser& model, const torch::Tensor& images,
                            std::vector<DeadChannels>* layout) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> peaks;
  if (layout != nullptr) layout->clear();
  for (const ReluLayer& layer : model.relu_layers(images)) {
    // [B, C, ...] -> [C]: the channel's largest output anywhere in the batch.
    peaks.push_back(layer.activation.transpose(0, 1).flatten(1).amax(1).to(torch::kFloat32));
    if (layout != nullptr) layout->push_back({layer.name, 0, layer.activation.size(1)});
  }
  return torch::cat(peaks);
}

std::vector<DeadChannels> dead_channels(const torch::Tensor& peaks,
                                        std::vector<DeadChannels> layout) {
  const torch::Tensor dead = peaks.cpu().le(0);
  std::int64_t first = 0;
  for (DeadChannels& layer : layout) {
    layer.dead = dead.narrow(0, first, layer.channels).sum().item<std::int64_t>();
    first += layer.channels;
  }
  return layout;
}

std::int64_t total_dead(const std::vector<DeadChannels>& layers) {
  std::int64_t dead = 0;
  for (const auto& layer : layers) dead += layer.dead;
  return dead;
}

std::string describe_dead(const std::vector<DeadChannels>& layers) {
  std::string text;
  for (const auto& layer : layers)
    text += (text.empty() ? "" : ", ") + layer.layer + " " + std::to_string(layer.dead) + "/" +
            std::to_string(layer.channels);
  return text;
}

}  // namespace dae
