// defines: dae::Trainer (the data-parallel training loop), dae::FlatGradients, dae::FitResult
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "dae/communicator.hpp"
#include "dae/config.hpp"
#include "dae/dataset.hpp"
#include "dae/model.hpp"
#include "dae/noise.hpp"
#include "dae/train_state.hpp"

namespace dae {

// All gradients of a module in one contiguous buffer, with one extra slot at the end that carries
// the rank's loss, so that a single all-reduce per step averages gradients and loss together.
// Each parameter's .grad() is a view into the buffer; autograd accumulates into it in place.
class FlatGradients {
 public:
  explicit FlatGradients(torch::nn::Module& module);
  torch::Tensor& buffer() { return buffer_; }
  std::int64_t gradient_count() const { return buffer_.numel() - 1; }
  void zero() { buffer_.zero_(); }
  void set_loss(double loss) { buffer_[gradient_count()].fill_(loss); }
  double loss() const { return buffer_[buffer_.numel() - 1].item<double>(); }

 private:
  torch::Tensor buffer_;
};

// Copies rank 0's parameters (and buffers) to every rank.
void broadcast_parameters(torch::nn::Module& module, Communicator& comm);

struct FitResult {
  std::int64_t steps = 0;        // steps run in this call
  double wall_s = 0;             // seconds spent in the loop
  double samples_per_s = 0;      // images per second over all ranks
  double final_loss = 0;         // mean loss over ranks at the last step
  std::vector<std::pair<std::int64_t, double>> loss_history;  // (step, loss) at log points
};

class Trainer {
 public:
  Trainer(const Config& config, Communicator& comm, const Shard& train, ConvDae model);

  // One optimizer step on the next batch; returns the loss averaged over all ranks.
  double step();
  // Runs from state().step to config.steps, printing progress on rank 0.
  FitResult fit();

  TrainState& state() { return state_; }
  ConvDae& model() { return model_; }
  torch::optim::Adam& optimizer() { return optimizer_; }

 private:
  const Config& config_;
  Communicator& comm_;
  const Shard& train_;
  ConvDae model_;
  torch::optim::Adam optimizer_;
  FlatGradients gradients_;
  BatchOrder order_;
  NoiseSource noise_;
  TrainState state_;
};

// Turns uint8 images [B, 28, 28] into float [B, 1, 28, 28] in [0, 1].
torch::Tensor to_unit_float(const torch::Tensor& images);

}  // namespace dae
