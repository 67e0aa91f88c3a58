// defines: dae::FusedAdam (torch::optim::Adam's update as one fused kernel, inputs on the device),
//          dae::adam_state_of
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace dae {

// `parameter`'s state in `optimizer`, created (zero moments, step 0) if it has none yet.
torch::optim::AdamParamState& adam_state_of(torch::optim::Adam& optimizer,
                                            const torch::Tensor& parameter);

// Applies torch::optim::Adam's update to the optimizer's parameters with at::_fused_adam_: one
// kernel for all parameters where LibTorch's own step() runs about ten per parameter. The
// moments stay in the optimizer's state, which checkpoints save and load as before. The step
// number and the learning rate are read from tensors on the parameters' device, so no host
// value is baked into update(): a CUDA graph can capture it and replay it at every step.
class FusedAdam {
 public:
  explicit FusedAdam(torch::optim::Adam& optimizer);

  // Outside any captured region, before update(): the update's step number (1 for the first)
  // and learning rate, written into the device tensors, the optimizer's options (which
  // checkpoints record) and its per-parameter step counts. Creates the moments (zeros) of a
  // parameter that has none yet. A captured update keeps the moment tensors it was captured
  // with; load_checkpoint overwrites existing moments in place, so loading stays visible to it.
  void prepare(std::int64_t step, double lr);

  // One Adam update of every parameter from its grad(); device work only.
  void update();

 private:
  torch::optim::Adam& optimizer_;
  std::vector<torch::Tensor> parameters_, gradients_, exp_avgs_, exp_avg_sqs_;
  torch::Tensor step_;  // float32 scalar on the parameters' device: _fused_adam_'s step count
  torch::Tensor lr_;    // float32 scalar on the parameters' device
};

}  // namespace dae
