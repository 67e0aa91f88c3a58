// The seed network's geometry and size.
#include <gtest/gtest.h>

#include "dae/core/config.hpp"
#include "dae/model/model.hpp"

namespace dae {
namespace {

TEST(ConvDae, HasTheSeedsParameterCount) {
  ConvDae model;
  // conv 1->16: 16*25 + 16, conv 16->32: 32*16*25 + 32, deconvs without bias: 32*16*25, 16*25.
  EXPECT_EQ(count_parameters(*model), 416 + 12832 + 12800 + 400);
  EXPECT_EQ(count_parameters(*model), 26448);
}

TEST(ConvDae, GeometryIs28To14To7To14To28) {
  ConvDae model;
  const torch::Tensor images = torch::rand({3, 1, 28, 28});
  const torch::Tensor hidden = torch::relu(model->encoder1(images));
  EXPECT_EQ(hidden.sizes(), (std::vector<std::int64_t>{3, 16, 14, 14}));
  const torch::Tensor code = model->encode(images);
  EXPECT_EQ(code.sizes(), (std::vector<std::int64_t>{3, 32, 7, 7}));
  EXPECT_EQ(model->decoder1(code).sizes(), (std::vector<std::int64_t>{3, 16, 14, 14}));
  EXPECT_EQ(model->forward(images).sizes(), images.sizes());
}

TEST(ConvDae, OutputActivationIsApplied) {
  torch::manual_seed(3);
  const torch::Tensor images = torch::rand({2, 1, 28, 28});
  ConvDae relu(Activation::kRelu), sigmoid(Activation::kSigmoid), none(Activation::kNone);
  EXPECT_GE(relu->forward(images).min().item<float>(), 0.0f);
  const torch::Tensor squashed = sigmoid->forward(images);
  EXPECT_GT(squashed.min().item<float>(), 0.0f);
  EXPECT_LT(squashed.max().item<float>(), 1.0f);
  // Without an activation a random network produces negative pixels somewhere.
  EXPECT_LT(none->forward(images).min().item<float>(), 0.0f);
}

TEST(ConvDae, TruncatedNormalInitIsTheSeedsTensorFlowHelpers) {
  torch::manual_seed(4);
  Config config;
  config.model.init = InitKind::kTruncatedNormal;
  config.model.init_bias = 0.1;
  const ModelPtr model = make_model(config.model);
  std::vector<torch::Tensor> weights;
  for (const auto& item : model->named_parameters()) {
    if (item.value().dim() > 1)
      weights.push_back(item.value().flatten());
    else
      EXPECT_TRUE(item.value().eq(0.1f).all().item<bool>()) << item.key();
  }
  const torch::Tensor all = torch::cat(weights);
  // Every value within two standard deviations, none dropped to the bound, and the spread of a
  // normal truncated there: 0.1 * 0.8796.
  EXPECT_LE(all.abs().max().item<float>(), 0.2f);
  EXPECT_GT(all.abs().max().item<float>(), 0.19f);
  EXPECT_NEAR(all.std().item<float>(), 0.08796f, 0.002f);
  EXPECT_NEAR(all.mean().item<float>(), 0.0f, 0.002f);
}

TEST(DeadChannels, AChannelThatNeverFiresIsCountedInItsLayerOnly) {
  torch::manual_seed(5);
  ConvDae model(Activation::kRelu);
  {
    torch::NoGradGuard no_grad;
    model->encoder1->weight[3].zero_();
    model->encoder1->bias[3].fill_(-1.0);  // channel 3 of encoder1: relu(-1) = 0 everywhere
    model->encoder2->bias.fill_(0.5);      // the rest stays alive for these images
    model->decoder1->weight.abs_();
  }
  const torch::Tensor images = torch::rand({8, 1, 28, 28});
  std::vector<DeadChannels> layout;
  const torch::Tensor peaks = channel_peaks(*model, images, &layout);
  EXPECT_EQ(peaks.numel(), 16 + 32 + 16 + 1);
  const auto dead = dead_channels(peaks, layout);
  ASSERT_EQ(dead.size(), 4u);
  EXPECT_EQ(dead[0].layer, "encoder1");
  EXPECT_EQ(dead[0].dead, 1);
  EXPECT_EQ(dead[0].channels, 16);
  EXPECT_EQ(dead[1].dead, 0);
  EXPECT_EQ(dead[3].layer, "output");
  EXPECT_EQ(total_dead(dead), dead[0].dead + dead[2].dead + dead[3].dead);
  EXPECT_EQ(describe_dead(dead).rfind("encoder1 1/16, encoder2 0/32, decoder1 ", 0), 0u)
      << describe_dead(dead);
}

}  // namespace
}  // namespace dae
