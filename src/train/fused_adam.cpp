#include "dae/train/fused_adam.hpp"

#include "dae/core/error.hpp"

namespace dae {

namespace {

torch::optim::AdamOptions& options_of(torch::optim::Adam& optimizer) {
  return static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[0].options());
}

}  // namespace

torch::optim::AdamParamState& adam_state_of(torch::optim::Adam& optimizer,
                                            const torch::Tensor& parameter) {
  auto& state = optimizer.state()[parameter.unsafeGetTensorImpl()];
  if (!state) {
    auto fresh = std::make_unique<torch::optim::AdamParamState>();
    fresh->exp_avg(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
    state = std::move(fresh);
  }
  return static_cast<torch::optim::AdamParamState&>(*state);
}

FusedAdam::FusedAdam(torch::optim::Adam& optimizer) : optimizer_(optimizer) {
  DAE_CHECK(optimizer.param_groups().size() == 1, "FusedAdam: expects one parameter group");
  const torch::optim::AdamOptions& options = options_of(optimizer);
  DAE_CHECK(!options.amsgrad(), "FusedAdam: amsgrad is not supported");
  parameters_ = optimizer.param_groups()[0].params();
  DAE_CHECK(!parameters_.empty(), "FusedAdam: no parameters");
  const auto scalar = torch::TensorOptions().dtype(torch::kFloat32).device(parameters_[0].device());
  step_ = torch::zeros({}, scalar);
  lr_ = torch::zeros({}, scalar);
}

void FusedAdam::prepare(std::int64_t step, double lr) {
  options_of(optimizer_).lr(lr);
  step_.fill_(static_cast<double>(step));
  lr_.fill_(lr);
  gradients_.clear();
  exp_avgs_.clear();
  exp_avg_sqs_.clear();
  for (const torch::Tensor& parameter : parameters_) {
    torch::optim::AdamParamState& adam = adam_state_of(optimizer_, parameter);
    adam.step(step);
    DAE_CHECK(parameter.grad().defined(), "FusedAdam: a parameter has no gradient");
    gradients_.push_back(parameter.grad());
    exp_avgs_.push_back(adam.exp_avg());
    exp_avg_sqs_.push_back(adam.exp_avg_sq());
  }
}

void FusedAdam::update() {
  DAE_CHECK(exp_avgs_.size() == parameters_.size(), "FusedAdam: update() before prepare()");
  const torch::optim::AdamOptions& options = options_of(optimizer_);
  // Every parameter has taken the same number of steps: one step tensor serves them all.
  const std::vector<torch::Tensor> steps(parameters_.size(), step_);
  torch::NoGradGuard no_grad;
  at::_fused_adam_(parameters_, gradients_, exp_avgs_, exp_avg_sqs_, /*max_exp_avg_sqs=*/{}, steps,
                   lr_, std::get<0>(options.betas()), std::get<1>(options.betas()),
                   options.weight_decay(), options.eps(), /*amsgrad=*/false, /*maximize=*/false);
}

}  // namespace dae
