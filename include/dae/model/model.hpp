// defines: dae::Denoiser (what the trainer and evaluator need of a model), dae::ConvDae (the
//          seed's convolutional autoencoder), dae::MlpDae (a fully connected one of similar
//          size), dae::make_model, dae::count_parameters
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "dae/core/config.hpp"

namespace dae {

// One ReLU layer's output for a batch: [B, channels, ...] (channels are units for the MLP).
struct ReluLayer {
  std::string name;          // the module it follows: encoder1, encoder2, decoder1, ..., output
  torch::Tensor activation;  // after the ReLU
};

// Where a ReLU layer's channels live among the parameters: channel c is computed by index c along
// `dim` of each incoming parameter and read by the next layer through index c along `dim` of
// each outgoing one (named as named_parameters() names them).
struct ParameterSlice {
  std::string parameter;  // "encoder2.weight"
  std::int64_t dim = 0;
};
struct ChannelWiring {
  std::string layer;  // as in ReluLayer
  std::vector<ParameterSlice> incoming, outgoing;
};

// An autoencoder that maps [B,1,28,28] images to [B,1,28,28] reconstructions through a code.
struct Denoiser : torch::nn::Module {
  explicit Denoiser(Activation output_activation) : output_activation(output_activation) {}
  virtual torch::Tensor encode(const torch::Tensor& images) = 0;
  virtual torch::Tensor decode(const torch::Tensor& code) = 0;
  torch::Tensor forward(const torch::Tensor& images) { return decode(encode(images)); }
  // Every ReLU layer's output for `images` (the output layer too when its activation is relu).
  virtual std::vector<ReluLayer> relu_layers(const torch::Tensor& images) = 0;
  // Each ReLU layer's wiring, in relu_layers' order (an output ReLU has nothing outgoing).
  virtual std::vector<ChannelWiring> channel_wiring() const = 0;

  Activation output_activation;  // applied by decode()

 protected:
  torch::Tensor activate_output(const torch::Tensor& out) const;
};
using ModelPtr = std::shared_ptr<Denoiser>;

// The seed network: 28x28 -> conv 5x5/2 (1->16) -> 14x14 -> conv 5x5/2 (16->32) -> 7x7x32 code
// -> transposed conv 5x5/2 (32->16, no bias) -> 14x14 -> transposed conv 5x5/2 (16->1, no bias)
// -> 28x28, ReLU after every layer (the last one configurable). 26 448 parameters.
struct ConvDaeImpl : Denoiser {
  explicit ConvDaeImpl(Activation output_activation = Activation::kRelu);
  torch::Tensor encode(const torch::Tensor& images) override;  // -> code [B,32,7,7]
  torch::Tensor decode(const torch::Tensor& code) override;
  std::vector<ReluLayer> relu_layers(const torch::Tensor& images) override;
  std::vector<ChannelWiring> channel_wiring() const override;

  torch::nn::Conv2d encoder1{nullptr}, encoder2{nullptr};
  torch::nn::ConvTranspose2d decoder1{nullptr}, decoder2{nullptr};
};
TORCH_MODULE(ConvDae);

// The seed's question 1: a plain fully connected autoencoder, 784 -> 16 (ReLU) -> 784,
// 25 888 parameters, against the conv network's 26 448.
struct MlpDaeImpl : Denoiser {
  explicit MlpDaeImpl(Activation output_activation = Activation::kNone);
  torch::Tensor encode(const torch::Tensor& images) override;  // -> code [B,16]
  torch::Tensor decode(const torch::Tensor& code) override;
  std::vector<ReluLayer> relu_layers(const torch::Tensor& images) override;
  std::vector<ChannelWiring> channel_wiring() const override;

  torch::nn::Linear encoder{nullptr}, decoder{nullptr};
};
TORCH_MODULE(MlpDae);

// The model `options` name (model, output-activation, init), with its initial weights drawn
// from LibTorch's global generator.
ModelPtr make_model(const ModelOptions& options);
// The same, drawn from a generator seeded with `seed` (on the CPU), leaving LibTorch's global
// generator as it was: the fresh weights that recycling gives a dead channel, alike on every rank.
ModelPtr make_seeded_model(const ModelOptions& options, std::uint64_t seed);

// Glorot/Xavier-uniform weights and biases set to `bias` (0: the initialisation of the
// TensorFlow layers the seed was written with; PyTorch's default draws smaller weights).
void init_xavier(torch::nn::Module& module, double bias = 0.0);

// The seed's most likely initialisation (README, "The seed's initialisation"): the TensorFlow
// tutorials of its time drew weights from tf.truncated_normal(stddev=0.1) — N(0, stddev^2), values
// beyond 2 stddev drawn again — and set biases with tf.constant(0.1).
inline constexpr double kSeedWeightStddev = 0.1;
void init_truncated_normal(torch::nn::Module& module, double stddev, double bias);

std::int64_t count_parameters(torch::nn::Module& module);
// The device a module's parameters live on.
torch::Device device_of(torch::nn::Module& module);

// Dead ReLU channels: those whose output is 0 for every image of a batch (or of the test set).
struct DeadChannels {
  std::string layer;
  std::int64_t dead = 0;
  std::int64_t channels = 0;
};
// Each channel's largest output over the batch, every ReLU layer's channels one after another
// (float32 on the model's device); max-reducible over batches and ranks (outputs are >= 0).
torch::Tensor channel_peaks(Denoiser& model, const torch::Tensor& images,
                            std::vector<DeadChannels>* layout = nullptr);
// The dead channels per layer from channel_peaks() of a batch or of many.
std::vector<DeadChannels> dead_channels(const torch::Tensor& peaks,
                                        std::vector<DeadChannels> layout);
std::int64_t total_dead(const std::vector<DeadChannels>& layers);
// "encoder1 0/16, encoder2 3/32, decoder1 0/16".
std::string describe_dead(const std::vector<DeadChannels>& layers);

}  // namespace dae
