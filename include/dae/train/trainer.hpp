// defines: dae::Trainer (the data-parallel training loop), dae::FlatGradients, dae::FitResult
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "dae/dist/communicator.hpp"
#include "dae/core/config.hpp"
#include "dae/dist/step_graph.hpp"
#include "dae/data/dataset.hpp"
#include "dae/train/fused_adam.hpp"
#include "dae/model/fused_conv_dae.hpp"
#include "dae/model/model.hpp"
#include "dae/data/noise.hpp"
#include "dae/train/train_state.hpp"
#include "dae/dist/ordered_sum.hpp"
#include "dae/data/virtual_shards.hpp"

namespace dae {

// All gradients of a module in one contiguous buffer, with two extra slots at the end: the
// rank's loss and whether it was asked to stop. A single all-reduce per step thus averages
// gradients and loss and tells every rank whether any rank got a stop signal.
// Each parameter's .grad() is a view into the buffer; autograd accumulates into it in place.
class FlatGradients {
 public:
  explicit FlatGradients(torch::nn::Module& module);
  torch::Tensor& buffer() { return buffer_; }
  std::int64_t gradient_count() const { return buffer_.numel() - kExtraSlots; }
  torch::Tensor& gradients() { return gradients_; }  // the buffer without the extra slots
  void zero() { gradients_.zero_(); }  // the gradients; the extra slots are set each step
  void set_loss(const torch::Tensor& loss) { extras_[0].copy_(loss); }  // a device copy
  void set_stop(bool stop) { extras_[1].fill_(stop ? 1.0 : 0.0); }
  // Reading these waits for the device.
  double loss() const { return extras_[0].item<double>(); }
  bool stop_requested() const { return extras_[1].item<double>() > 0; }

 private:
  static constexpr std::int64_t kExtraSlots = 2;
  torch::Tensor buffer_;
  torch::Tensor gradients_;  // view of all but the last two slots
  torch::Tensor extras_;     // view of the last two slots
};

// Copies rank 0's parameters (and buffers) to every rank.
void broadcast_parameters(torch::nn::Module& module, Communicator& comm);

// The learning rate of (1-based) `step`: a linear rise over config.lr_warmup steps, then lr
// (lr-schedule = constant) or a cosine from lr at the warm-up's end down to lr * lr_floor at
// config.steps. A function of the step alone, so a resumed run uses the original's rates.
double learning_rate_at(const Config& config, std::int64_t step);

// Adam's options from the config: the learning rate and epsilon. Both step paths (dae's fused
// kernels and LibTorch's autograd) update through the same FusedAdam on these options.
torch::optim::AdamOptions adam_options(const Config& config);

// Scales `gradients` (one flat tensor) by min(1, max_norm / (its L2 norm + 1e-6)), the rule of
// torch.nn.utils.clip_grad_norm_. Device work only (no host read), so a CUDA graph captures it.
void clip_gradient_norm(torch::Tensor& gradients, double max_norm);

// Steps a throughput figure leaves out: the first ones allocate and warm caches.
inline constexpr std::int64_t kWarmupSteps = 20;

struct FitResult {
  bool stopped = false;          // a stop signal ended the run early (checkpoint written)
  std::int64_t steps = 0;        // steps run in this call
  double wall_s = 0;             // seconds spent in the loop
  double samples_per_s = 0;      // images per second over all ranks
  double steady_samples_per_s = 0;  // the same without the first kWarmupSteps (allocation, caches)
  double final_loss = 0;         // mean loss over ranks at the last step
};

// Called collectively every config.eval_every steps (the evaluation lives in eval/, beside the
// trainer, and main hands it in: train/ never includes eval/).
using EvaluationHook = std::function<void(const TrainState& state)>;

class Checkpointer;
class PhaseClock;  // --profile's per-phase timer (trainer.cpp)
class TensorBoardWriter;
struct CheckpointData;

class Trainer {
 public:
  // `checkpointer` may be null (no checkpoints, stop signals ignored); `evaluate` empty (no
  // evaluation every config.eval_every steps).
  Trainer(const Config& config, Communicator& comm, const Shard& train, ModelPtr model,
          Checkpointer* checkpointer = nullptr, EvaluationHook evaluate = {});

  // One optimizer step on the next batch; returns the loss averaged over all ranks (which waits
  // for the device; fit() reads it only when it logs).
  double step();
  // Runs from state().step to config.steps, printing progress on rank 0, checkpointing every
  // config.checkpoint_every steps and at the end, evaluating every config.eval_every steps.
  // With a checkpointer, on a stop signal (any rank) it checkpoints at the step boundary, records
  // the stop (Checkpointer::record_stop) and returns with `stopped`.
  FitResult fit();
  // Continues a checkpointed run: the step, and this rank's data position and noise stream when
  // the world size and the generator's kind (CPU or CUDA) are the ones saved; otherwise
  // re-derived from (seed, rank, step). Returns whether the continuation is exact. In
  // world-size invariant mode it always is (any world size dividing V): the owned virtual
  // shards' positions and generators are restored, and a checkpoint of the other mode or of
  // another V is refused with one line.
  bool resume_from(const CheckpointData& saved);
  // Writes a checkpoint of the current state (collective).
  std::string save_checkpoint();

  TrainState& state() { return state_; }
  // What runs the step: "fused (avx512)", "fused (portable)" or "libtorch", with ", bf16
  // autocast" and ", CUDA graph" where configured.
  std::string kernels() const;
  // Mean seconds per step of each phase since the start of fit(); filled with config.profile.
  const std::vector<std::pair<std::string, double>>& profile() const { return profile_; }
  // Rank 0: progress lines also go to TensorBoard (loss, learning rate, samples/s).
  void set_tensorboard(TensorBoardWriter* writer) { tensorboard_ = writer; }
  torch::optim::Adam& optimizer() { return optimizer_; }

 private:
  // Batch, noise and the step's host-side inputs, then the step itself (eagerly, or through the
  // CUDA graph); leaves the loss and stop flag on the device.
  void advance();
  // The step's device work on clean_/noisy_: forward, backward, all-reduce, Adam. Laps `clock`
  // after each phase.
  void forward_backward_update(PhaseClock& clock);
  // Its first part: forward, loss and backward into gradients_ (the loss slot set).
  void forward_backward(PhaseClock& clock);
  // Its last part, on the reduced gradient: clip-grad-norm's clipping, then Adam's step.
  void apply_update(PhaseClock& clock);
  // advance() in world-size invariant mode: one forward and backward per owned virtual shard,
  // their gradients summed in virtual-shard order over all ranks (OrderedSum), then Adam.
  void advance_virtual_shards();
  bool resume_virtual_shards(const CheckpointData& saved);
  double read_loss();  // the last step's averaged loss, into state_.last_loss
  // recycle-dead-every: whether (1-based) `step` ends with a recycling; looking at a batch of it
  // raises recycle_peaks_ to its channel peaks; recycle_dead() then recycles, on every rank
  // alike, the channels no rank's batch reached (collective).
  bool recycle_due(std::int64_t step) const;
  void look_for_dead_channels(const torch::Tensor& images);
  void recycle_dead();
  double learning_rate(std::int64_t step) const { return learning_rate_at(config_, step); }
  // Ends the run (on every rank alike: the loss and the parameters are the same everywhere)
  // when the loss or a parameter is no longer finite, before it can reach a checkpoint.
  void require_finite();
  const Config& config_;
  Communicator& comm_;
  torch::Device device_;
  torch::Tensor images_;  // this rank's shard, uint8 [rows, 28, 28], on device_
  ModelPtr model_;
  Checkpointer* checkpointer_;
  EvaluationHook evaluate_;
  torch::optim::Adam optimizer_;  // Adam's options and state (checkpoints read them)
  FusedAdam adam_;                // the update itself
  FlatGradients gradients_;
  std::unique_ptr<FusedConvDaeStep> fused_;  // null: LibTorch's autograd runs the step
  bool bf16_;                                // the forward pass under bf16 autocast
  std::unique_ptr<StepGraph> graph_;         // null: the step runs eagerly
  torch::Tensor clean_, noisy_;  // the step's batch; with graph_ the same tensors every step
  BatchOrder order_;
  NoiseSource noise_;
  TrainState state_;
  // World-size invariant mode only (null in per-rank mode): the owned virtual shards' streams,
  // the first one's number, and the rows of gradients they contribute to the ordered sum.
  std::unique_ptr<VirtualShardStreams> shards_;
  int first_shard_ = 0;
  std::unique_ptr<OrderedSum> shard_sum_;
  bool loss_unread_ = false;  // the last step's loss is still only on the device
  std::vector<std::pair<std::string, double>> profile_;  // phase -> total seconds, then mean
  torch::Tensor recycle_peaks_;  // a recycling step's channel peaks so far; undefined otherwise
  torch::Tensor last_output_;  // the last batch's outputs; all 0 means a ReLU layer died
  bool warned_dead_output_ = false;
  TensorBoardWriter* tensorboard_ = nullptr;  // rank 0 only; not owned
};

}  // namespace dae
