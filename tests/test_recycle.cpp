// Recycling dead ReLU channels (train/recycle.hpp): each model's channel wiring, what a recycled
// channel gets, and that the network's output does not move when it happens.
#include <gtest/gtest.h>

#include "dae/model/model.hpp"
#include "dae/train/fused_adam.hpp"
#include "dae/train/recycle.hpp"

namespace dae {
namespace {

ModelOptions options_for(ModelKind kind, Activation output) {
  ModelOptions options;
  options.kind = kind;
  options.output_activation = output;
  options.init_bias = 0.1;
  return options;
}

TEST(ChannelWiring, NamesEveryReluLayerAndSlicesOfItsWidth) {
  for (const ModelKind kind : {ModelKind::kConv, ModelKind::kMlp})
    for (const Activation output : {Activation::kRelu, Activation::kNone}) {
      const ModelPtr model = make_model(options_for(kind, output));
      const auto layers = model->relu_layers(torch::rand({2, 1, 28, 28}));
      const auto wiring = model->channel_wiring();
      const auto parameters = model->named_parameters();
      ASSERT_EQ(wiring.size(), layers.size()) << name_of(kind) << " " << name_of(output);
      for (std::size_t i = 0; i < layers.size(); ++i) {
        EXPECT_EQ(wiring[i].layer, layers[i].name);
        const std::int64_t channels = layers[i].activation.size(1);
        EXPECT_FALSE(wiring[i].incoming.empty());
        // Only the output layer has no reader.
        EXPECT_EQ(wiring[i].outgoing.empty(), layers[i].name == "output") << layers[i].name;
        for (const auto* slices : {&wiring[i].incoming, &wiring[i].outgoing})
          for (const ParameterSlice& slice : *slices) {
            ASSERT_TRUE(parameters.contains(slice.parameter)) << slice.parameter;
            EXPECT_EQ(parameters[slice.parameter].size(slice.dim), channels)
                << layers[i].name << ": " << slice.parameter << " along " << slice.dim;
          }
      }
    }
}

TEST(SeededModel, DependsOnTheSeedAloneAndLeavesTheGlobalGeneratorAlone) {
  const ModelOptions options = options_for(ModelKind::kConv, Activation::kNone);
  auto flat = [](Denoiser& model) {
    std::vector<torch::Tensor> pieces;
    for (const auto& parameter : model.parameters()) pieces.push_back(parameter.flatten());
    return torch::cat(pieces);
  };
  torch::manual_seed(1);
  const torch::Tensor first = flat(*make_seeded_model(options, 42));
  const torch::Tensor drawn_after = torch::rand({4});
  torch::manual_seed(2);
  EXPECT_TRUE(flat(*make_seeded_model(options, 42)).equal(first));
  EXPECT_FALSE(flat(*make_seeded_model(options, 43)).equal(first));
  torch::manual_seed(1);
  EXPECT_TRUE(torch::rand({4}).equal(drawn_after));  // as if no model had been made
}

TEST(RecycleDeadChannels, FreshWeightsInZeroOutAndTheOutputUnchanged) {
  torch::manual_seed(5);
  const ModelOptions options = options_for(ModelKind::kConv, Activation::kNone);
  const ModelPtr owner = make_model(options);
  auto& model = dynamic_cast<ConvDaeImpl&>(*owner);
  {
    torch::NoGradGuard no_grad;
    model.encoder1->weight[2].zero_();
    model.encoder1->bias[2].fill_(-1);  // relu(-1): encoder1's channel 2 never fires
    model.encoder2->weight[5].copy_(-model.encoder2->weight[5].abs());
    model.encoder2->bias[5].fill_(-1);  // inputs are >= 0: encoder2's channel 5 never fires
  }
  torch::optim::Adam optimizer(model.parameters(), torch::optim::AdamOptions(0.01));
  for (const auto& parameter : model.parameters()) {
    adam_state_of(optimizer, parameter).exp_avg().fill_(1);
    adam_state_of(optimizer, parameter).exp_avg_sq().uniform_(1, 2);  // mean 1.5
  }
  const torch::Tensor kept_moments =
      adam_state_of(optimizer, model.encoder2->weight).exp_avg_sq()[4].select(0, 0).clone();
  const torch::Tensor images = torch::rand({8, 1, 28, 28});
  const torch::Tensor before = model.forward(images).detach();
  torch::Tensor kept_weights = model.encoder2->weight[4].detach().clone();
  kept_weights[2].zero_();  // what read encoder1's channel 2
  std::vector<DeadChannels> layout;
  const torch::Tensor peaks = channel_peaks(model, images, &layout);
  const std::vector<DeadChannels> dead = dead_channels(peaks, layout);
  ASSERT_EQ(dead[0].dead, 1);
  ASSERT_EQ(dead[1].dead, 1);

  const ModelPtr fresh_owner = make_seeded_model(options, 77);
  auto& fresh = dynamic_cast<ConvDaeImpl&>(*fresh_owner);
  const std::vector<DeadChannels> recycled = recycle_dead_channels(model, fresh, optimizer, peaks);
  for (std::size_t i = 0; i < dead.size(); ++i) EXPECT_EQ(recycled[i].dead, dead[i].dead);

  // The dead channels' incoming weights and biases are the fresh model's...
  EXPECT_TRUE(model.encoder1->weight[2].equal(fresh.encoder1->weight[2]));
  EXPECT_TRUE(model.encoder1->bias[2].equal(fresh.encoder1->bias[2]));
  EXPECT_TRUE(model.encoder2->weight[5].equal(fresh.encoder2->weight[5]));
  EXPECT_TRUE(model.encoder2->bias[5].equal(fresh.encoder2->bias[5]));
  // ...what reads them is 0 (but the recycled encoder2 channel 5's fresh weights, themselves
  // read by nothing), and nothing else moved.
  const torch::Tensor reading = model.encoder2->weight.select(1, 2);
  EXPECT_EQ(
      torch::cat({reading.narrow(0, 0, 5), reading.narrow(0, 6, 26)}).abs().max().item<float>(),
      0.0f);
  EXPECT_EQ(model.decoder1->weight[5].abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(model.encoder2->weight[4].equal(kept_weights));
  // Adam's momentum starts again in those slices, its second moment at the parameter's mean
  // (1.5 here); the rest keeps its moments.
  const auto& encoder2 = adam_state_of(optimizer, model.encoder2->weight);
  EXPECT_EQ(encoder2.exp_avg()[5].abs().max().item<float>(), 0.0f);
  EXPECT_EQ(encoder2.exp_avg().select(1, 2).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(encoder2.exp_avg()[4].select(0, 0).eq(1).all().item<bool>());
  for (const torch::Tensor& restarted :
       {encoder2.exp_avg_sq()[5], encoder2.exp_avg_sq().select(1, 2),
        adam_state_of(optimizer, model.decoder1->weight).exp_avg_sq()[5]}) {
    EXPECT_NEAR(restarted.min().item<float>(), 1.5f, 0.02f);
    EXPECT_NEAR(restarted.max().item<float>(), 1.5f, 0.02f);
  }
  EXPECT_TRUE(encoder2.exp_avg_sq()[4].select(0, 0).equal(kept_moments));
  EXPECT_EQ(adam_state_of(optimizer, model.decoder1->weight).exp_avg()[5].abs().max().item<float>(),
            0.0f);

  // The output is what it was (the dead channels gave 0, the fresh ones are read with weight 0),
  // and the channels fire again.
  EXPECT_TRUE(torch::allclose(model.forward(images), before, /*rtol=*/0, /*atol=*/1e-6));
  const torch::Tensor after = channel_peaks(model, images);
  EXPECT_GT(after[2].item<float>(), 0.0f);
  EXPECT_GT(after[16 + 5].item<float>(), 0.0f);
  EXPECT_EQ(total_dead(dead_channels(after, layout)), 0);
}

}  // namespace
}  // namespace dae
