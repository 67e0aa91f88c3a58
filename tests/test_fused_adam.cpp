// FusedAdam (at::_fused_adam_ on the optimizer's own state) against torch::optim::Adam.
#include <gtest/gtest.h>

#include "dae/train/fused_adam.hpp"
#include "dae/model/model.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::relative_difference;

// Two copies of one model: `reference` steps with torch::optim::Adam, `fused` with FusedAdam.
struct TwinModels {
  TwinModels() {
    torch::manual_seed(5);
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < reference->parameters().size(); ++i)
      fused->parameters()[i].copy_(reference->parameters()[i]);
  }
  // The same random gradient into both models' grad().
  void set_gradients(int step) {
    torch::manual_seed(100 + step);
    for (std::size_t i = 0; i < reference->parameters().size(); ++i) {
      const torch::Tensor gradient = torch::randn_like(reference->parameters()[i]);
      reference->parameters()[i].mutable_grad() = gradient.clone();
      fused->parameters()[i].mutable_grad() = gradient.clone();
    }
  }
  void expect_equal_parameters(int step) {
    for (std::size_t i = 0; i < reference->parameters().size(); ++i)
      EXPECT_LT(relative_difference(fused->parameters()[i], reference->parameters()[i]), 1e-6)
          << "parameter " << i << " after step " << step;
  }
  ConvDae reference{Activation::kNone};
  ConvDae fused{Activation::kNone};
};

TEST(FusedAdam, MatchesLibTorchsAdamStepForStepWhileTheRateChanges) {
  TwinModels models;
  torch::optim::Adam reference_adam(models.reference->parameters(),
                                    torch::optim::AdamOptions(0.01));
  torch::optim::Adam fused_state(models.fused->parameters(), torch::optim::AdamOptions(0.01));
  FusedAdam fused(fused_state);
  for (int step = 1; step <= 12; ++step) {
    const double lr = 0.01 * std::min(1.0, step / 5.0);  // a warm-up: the rate changes
    models.set_gradients(step);
    static_cast<torch::optim::AdamOptions&>(reference_adam.param_groups()[0].options()).lr(lr);
    reference_adam.step();
    fused.prepare(step, lr);
    fused.update();
    models.expect_equal_parameters(step);
  }
  // The optimizer's state is what checkpoints save: moments, step count and rate are all there.
  const auto& options =
      static_cast<torch::optim::AdamOptions&>(fused_state.param_groups()[0].options());
  EXPECT_DOUBLE_EQ(options.lr(), 0.01);
  for (std::size_t i = 0; i < models.fused->parameters().size(); ++i) {
    const auto& mine = static_cast<const torch::optim::AdamParamState&>(
        *fused_state.state().at(models.fused->parameters()[i].unsafeGetTensorImpl()));
    const auto& theirs = static_cast<const torch::optim::AdamParamState&>(
        *reference_adam.state().at(models.reference->parameters()[i].unsafeGetTensorImpl()));
    EXPECT_EQ(mine.step(), 12);
    EXPECT_LT(relative_difference(mine.exp_avg(), theirs.exp_avg()), 1e-6);
    EXPECT_LT(relative_difference(mine.exp_avg_sq(), theirs.exp_avg_sq()), 1e-6);
  }
}

TEST(FusedAdam, ContinuesFromMomentsLoadedAfterItWasMade) {
  TwinModels models;
  torch::optim::Adam reference_adam(models.reference->parameters(),
                                    torch::optim::AdamOptions(0.01));
  torch::optim::Adam fused_state(models.fused->parameters(), torch::optim::AdamOptions(0.01));
  FusedAdam fused(fused_state);  // made before the "checkpoint" is loaded, as the Trainer is
  for (int step = 1; step <= 4; ++step) {
    models.set_gradients(step);
    reference_adam.step();
  }
  {  // what load_checkpoint does: the reference's parameters and moments, as new tensors
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < models.fused->parameters().size(); ++i) {
      models.fused->parameters()[i].copy_(models.reference->parameters()[i]);
      const auto& saved = static_cast<const torch::optim::AdamParamState&>(
          *reference_adam.state().at(models.reference->parameters()[i].unsafeGetTensorImpl()));
      auto loaded = std::make_unique<torch::optim::AdamParamState>();
      loaded->exp_avg(saved.exp_avg().clone());
      loaded->exp_avg_sq(saved.exp_avg_sq().clone());
      loaded->step(saved.step());
      fused_state.state()[models.fused->parameters()[i].unsafeGetTensorImpl()] = std::move(loaded);
    }
  }
  for (int step = 5; step <= 8; ++step) {
    models.set_gradients(step);
    reference_adam.step();
    fused.prepare(step, 0.01);
    fused.update();
    models.expect_equal_parameters(step);
  }
}

}  // namespace
}  // namespace dae
