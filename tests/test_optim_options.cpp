// The optimisation options of README's "A recipe for every seed": the learning-rate schedule's
// values, gradient clipping's effect, and Adam's epsilon and betas reaching the update.
#include <gtest/gtest.h>

#include <cmath>

#include "dae/train/fused_adam.hpp"
#include "dae/model/model.hpp"
#include "dae/train/trainer.hpp"

namespace dae {
namespace {

Config schedule(const std::string& kind, long warmup, long steps, double floor) {
  Config config;
  config.lr = 0.01;
  config.lr_warmup = warmup;
  config.steps = steps;
  config.lr_schedule = parse_enum<LrSchedule>("lr-schedule", kind);
  config.lr_floor = floor;
  return config;
}

TEST(LearningRate, ConstantAfterTheWarmUp) {
  const Config config = schedule("constant", 4, 12, 0.1);  // lr-floor is ignored
  for (const auto& [step, rate] : std::vector<std::pair<long, double>>{
           {1, 0.0025}, {2, 0.005}, {3, 0.0075}, {4, 0.01}, {5, 0.01}, {12, 0.01}})
    EXPECT_DOUBLE_EQ(learning_rate_at(config, step), rate) << "step " << step;
}

TEST(LearningRate, CosineFromLrAtTheWarmUpsEndToTheFloorAtTheLastStep) {
  const Config config = schedule("cosine", 4, 12, 0.1);
  EXPECT_DOUBLE_EQ(learning_rate_at(config, 2), 0.005);  // the warm-up is unchanged
  EXPECT_DOUBLE_EQ(learning_rate_at(config, 4), 0.01);
  // Half-way through the decay (step 8 of 4..12): the middle of lr and lr * floor.
  EXPECT_NEAR(learning_rate_at(config, 8), 0.01 * (0.1 + 0.9 * 0.5), 1e-15);
  EXPECT_NEAR(learning_rate_at(config, 6), 0.01 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4))),
              1e-15);
  EXPECT_NEAR(learning_rate_at(config, 12), 0.001, 1e-15);
  EXPECT_NEAR(learning_rate_at(config, 20), 0.001, 1e-15);  // past the end (steps raised later)
  for (long step = 5; step <= 12; ++step)                   // falls monotonically
    EXPECT_LT(learning_rate_at(config, step), learning_rate_at(config, step - 1));
  // Without a warm-up the decay starts at step 0; floor 0 ends at 0.
  const Config bare = schedule("cosine", 0, 10, 0.0);
  EXPECT_NEAR(learning_rate_at(bare, 5), 0.005, 1e-15);
  EXPECT_NEAR(learning_rate_at(bare, 10), 0.0, 1e-15);
}

TEST(ClipGradientNorm, ScalesALargeGradientToTheNormAndLeavesASmallOneAlone) {
  torch::Tensor large = torch::tensor({3.0f, 4.0f});  // norm 5
  clip_gradient_norm(large, 1.0);
  EXPECT_NEAR(large[0].item<float>(), 0.6f, 1e-6);
  EXPECT_NEAR(large[1].item<float>(), 0.8f, 1e-6);
  torch::Tensor small = torch::tensor({0.3f, 0.4f});  // norm 0.5
  clip_gradient_norm(small, 1.0);
  EXPECT_FLOAT_EQ(small[0].item<float>(), 0.3f);
  EXPECT_FLOAT_EQ(small[1].item<float>(), 0.4f);
}

TEST(AdamEps, ReachesTheOptimizerAndTheFusedUpdate) {
  Config config;
  config.adam_eps = 1e-3;
  EXPECT_DOUBLE_EQ(adam_options(config).eps(), 1e-3);
  EXPECT_DOUBLE_EQ(adam_options(config).lr(), config.lr);
  // One step from a zero state moves each weight by lr * g / (|g| + eps): with a gradient as
  // small as eps, by half of lr; with LibTorch's default 1e-8, by almost the whole lr.
  for (const double eps : {1e-3, 1e-8}) {
    torch::Tensor weight = torch::zeros({3}, torch::requires_grad());
    weight.mutable_grad() = torch::full({3}, 1e-3);
    config.adam_eps = eps;
    torch::optim::Adam optimizer({weight}, adam_options(config));
    FusedAdam fused(optimizer);
    fused.prepare(1, config.lr);
    fused.update();
    const double expected = -config.lr * 1e-3 / (1e-3 + eps);
    EXPECT_NEAR(weight[0].item<double>(), expected, 1e-7) << "eps " << eps;
  }
}

// Adam's first step is lr * g / (|g| + eps) whatever the betas (the bias correction undoes them);
// the second, here with a zero gradient, moves by lr * m / (sqrt(v) + eps) with the moments
// m = beta1 g / (1 + beta1) and v = beta2 g^2 / (1 + beta2) after their bias correction.
TEST(AdamBetas, ReachTheOptimizerAndTheFusedUpdate) {
  const double g = 1e-3;
  for (const auto& [beta1, beta2] :
       std::vector<std::pair<double, double>>{{0.9, 0.999}, {0.5, 0.9}, {0.0, 0.99}}) {
    Config config;
    config.adam_beta1 = beta1;
    config.adam_beta2 = beta2;
    EXPECT_DOUBLE_EQ(std::get<0>(adam_options(config).betas()), beta1);
    EXPECT_DOUBLE_EQ(std::get<1>(adam_options(config).betas()), beta2);
    torch::Tensor weight = torch::zeros({3}, torch::requires_grad());
    weight.mutable_grad() = torch::full({3}, g);
    torch::optim::Adam optimizer({weight}, adam_options(config));
    FusedAdam fused(optimizer);
    fused.prepare(1, config.lr);
    fused.update();
    weight.mutable_grad().zero_();
    fused.prepare(2, config.lr);
    fused.update();
    const double first = g / (g + config.adam_eps);
    const double m = beta1 * g / (1 + beta1), v = beta2 * g * g / (1 + beta2);
    const double second = m / (std::sqrt(v) + config.adam_eps);
    EXPECT_NEAR(weight[0].item<double>(), -config.lr * (first + second), 1e-7)
        << "betas " << beta1 << ", " << beta2;
  }
}

}  // namespace
}  // namespace dae
