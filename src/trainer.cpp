#include "dae/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "dae/checkpoint.hpp"
#include "dae/cpu_kernels.hpp"
#include "dae/error.hpp"
#include "dae/evaluator.hpp"
#include "dae/signals.hpp"

namespace dae {

namespace {

constexpr std::uint64_t kTrainNoiseStream = 1;

std::string format_duration(double seconds) {
  const long total = static_cast<long>(seconds + 0.5);
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%ldh%02ldm", total / 3600, total % 3600 / 60);
  else
    std::snprintf(text, sizeof text, "%ldm%02lds", total / 60, total % 60);
  return text;
}

}  // namespace

FlatGradients::FlatGradients(torch::nn::Module& module) {
  std::int64_t total = 0;
  for (const auto& parameter : module.parameters()) total += parameter.numel();
  auto options = module.parameters().front().options().requires_grad(false);
  buffer_ = torch::zeros({total + kExtraSlots}, options);
  extras_ = buffer_.narrow(0, total, kExtraSlots);
  std::int64_t offset = 0;
  for (auto& parameter : module.parameters()) {
    const std::int64_t count = parameter.numel();
    parameter.mutable_grad() = buffer_.narrow(0, offset, count).view(parameter.sizes());
    offset += count;
  }
}

void FlatGradients::set_loss_and_stop(const torch::Tensor& loss, bool stop) {
  extras_[0].copy_(loss);  // a device copy: no wait for the GPU here
  extras_[1].fill_(stop ? 1.0 : 0.0);
}

void broadcast_parameters(torch::nn::Module& module, Communicator& comm) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : module.parameters()) {
    torch::Tensor data = parameter.detach();
    comm.broadcast(data, 0);
  }
  for (auto& buffer : module.buffers()) comm.broadcast(buffer, 0);
}

torch::Device device_of(torch::nn::Module& module) {
  return module.parameters().front().device();
}

torch::Tensor to_unit_float(const torch::Tensor& images) {
  return images.unsqueeze(1).to(torch::kFloat32).div_(255.0);
}

Trainer::Trainer(const Config& config, Communicator& comm, const Shard& train, ModelPtr model,
                 Checkpointer* checkpointer, Evaluator* evaluator)
    : config_(config),
      comm_(comm),
      device_(device_of(*model)),
      images_(train.images.to(device_)),
      model_(std::move(model)),
      checkpointer_(checkpointer),
      evaluator_(evaluator),
      optimizer_(model_->parameters(), torch::optim::AdamOptions(config.lr)),
      gradients_(*model_),
      fused_(make_fused_step(config, *model_, config.batch_size)),
      order_(train.rows(), static_cast<std::uint64_t>(config.seed), comm.rank()),
      noise_(static_cast<std::uint64_t>(config.seed), comm.rank(), kTrainNoiseStream,
             parse_noise_type(config.noise_type), device_) {
  state_.noise_state = noise_.state();
}

namespace {

// With --profile, splits each step into phases. GPU work is asynchronous, so every phase boundary
// waits for the device first; that costs speed, which is why it is a separate mode.
class PhaseClock {
 public:
  PhaseClock(bool enabled, torch::Device device,
             std::vector<std::pair<std::string, double>>& totals)
      : enabled_(enabled), device_(device), totals_(totals), last_(now()) {}
  void lap(const char* phase) {
    if (!enabled_) return;
    const auto time = now();
    auto found = std::find_if(totals_.begin(), totals_.end(),
                              [phase](const auto& entry) { return entry.first == phase; });
    if (found == totals_.end()) found = totals_.insert(totals_.end(), {phase, 0.0});
    found->second += std::chrono::duration<double>(time - last_).count();
    last_ = time;
  }

 private:
  std::chrono::steady_clock::time_point now() const {
    if (enabled_ && device_.is_cuda()) torch::cuda::synchronize(device_.index());
    return std::chrono::steady_clock::now();
  }
  bool enabled_;
  torch::Device device_;
  std::vector<std::pair<std::string, double>>& totals_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace

double Trainer::step() {
  PhaseClock clock(config_.profile, device_, profile_);
  const torch::Tensor indices = order_.next(config_.batch_size, state_.cursor).to(device_);
  const torch::Tensor clean = to_unit_float(images_.index_select(0, indices));
  clock.lap("batch");
  const torch::Tensor noisy = noise_.corrupt(clean, config_.noise);
  clock.lap("noise");

  torch::Tensor loss;
  if (fused_) {  // overwrites the gradients: nothing to zero
    loss = fused_->forward_loss(noisy, clean);
    clock.lap("forward");
    fused_->backward();
    last_output_ = fused_->output();
  } else {
    gradients_.zero();
    const torch::Tensor output = model_->forward(noisy);
    loss = torch::mse_loss(output, clean);
    clock.lap("forward");
    loss.backward();
    last_output_ = output.detach();
  }
  gradients_.set_loss_and_stop(loss.detach(), checkpointer_ != nullptr && stop_requested());
  clock.lap("backward");
  comm_.all_reduce_mean(gradients_.buffer());
  clock.lap("all-reduce");
  // A function of the step alone, so a resumed run uses the same rate as the original.
  const double warmup = config_.lr_warmup > 0
                            ? std::min(1.0, static_cast<double>(state_.step + 1) /
                                                static_cast<double>(config_.lr_warmup))
                            : 1.0;
  static_cast<torch::optim::AdamOptions&>(optimizer_.param_groups()[0].options())
      .lr(config_.lr * warmup);
  optimizer_.step();
  clock.lap("optimizer");

  ++state_.step;
  state_.last_loss = gradients_.loss();
  return state_.last_loss;
}

FitResult Trainer::fit() {
  FitResult result;
  const std::int64_t first_step = state_.step;
  const double samples_per_step = static_cast<double>(config_.batch_size) * comm_.size();
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  double warm_at = -1;  // seconds when kWarmupSteps were done
  while (state_.step < config_.steps) {
    const double loss = step();
    if (state_.step - first_step == kWarmupSteps) warm_at = seconds_since_start();
    if (checkpointer_ != nullptr && gradients_.stop_requested()) {
      const std::string path = save_checkpoint();
      if (comm_.rank() == 0)
        std::printf("stop signal: checkpoint %s written at step %lld, exiting with %d\n",
                    path.c_str(), static_cast<long long>(state_.step), kExitPreempted);
      result.stopped = true;
      break;
    }
    if (state_.step % config_.log_every == 0 || state_.step == config_.steps) {
      state_.loss_history.emplace_back(state_.step, loss);
      if (comm_.rank() == 0) {
        const double elapsed = seconds_since_start();
        const double done = static_cast<double>(state_.step - first_step);
        const double rate = done * samples_per_step / elapsed;
        const double eta = elapsed / done * static_cast<double>(config_.steps - state_.step);
        std::printf("step %6lld/%lld | loss %.6f | %8.0f samples/s | ETA %s\n",
                    static_cast<long long>(state_.step), static_cast<long long>(config_.steps),
                    loss, rate, format_duration(eta).c_str());
        if (!warned_dead_output_ && last_output_.max().item<float>() == 0.0f) {
          std::fprintf(stderr,
                       "dae_dist: warning: every output of the last batch is 0: a ReLU layer "
                       "has died and the loss is stuck at mean(x^2); restart with another seed, "
                       "a lower lr or output-activation = none\n");
          warned_dead_output_ = true;
        }
        std::fflush(stdout);
      }
    }
    if (evaluator_ != nullptr && config_.eval_every > 0 &&
        state_.step % config_.eval_every == 0 && state_.step != config_.steps)
      evaluator_->evaluate(*model_, state_);
    if (checkpointer_ != nullptr &&
        (state_.step == config_.steps ||
         (config_.checkpoint_every > 0 && state_.step % config_.checkpoint_every == 0)))
      save_checkpoint();
  }

  result.steps = state_.step - first_step;
  result.wall_s = seconds_since_start();
  result.samples_per_s =
      result.wall_s > 0 ? static_cast<double>(result.steps) * samples_per_step / result.wall_s : 0;
  if (warm_at >= 0 && result.wall_s > warm_at)
    result.steady_samples_per_s = static_cast<double>(result.steps - kWarmupSteps) *
                                  samples_per_step / (result.wall_s - warm_at);
  result.final_loss = state_.last_loss;
  for (auto& [phase, seconds] : profile_) seconds /= static_cast<double>(result.steps);
  return result;
}

std::string Trainer::kernels() const {
  return fused_ ? std::string("fused (") + kernels::isa() + ")" : "libtorch";
}

std::string Trainer::save_checkpoint() {
  DAE_CHECK(checkpointer_ != nullptr, "Trainer: no checkpointer to save with");
  state_.noise_state = noise_.state();
  return checkpointer_->save(*model_, optimizer_, state_);
}

bool Trainer::resume_from(const CheckpointData& saved) {
  state_.step = saved.step;
  state_.last_loss = saved.last_loss;
  state_.loss_history = saved.loss_history;
  const bool exact =
      saved.world_size == comm_.size() &&
      saved.noise_states[static_cast<std::size_t>(comm_.rank())].numel() == noise_.state().numel();
  // Every rank must take the same branch, or their data orders would mix old and new.
  torch::Tensor all_exact = torch::full({1}, exact ? 0.0 : 1.0, torch::kFloat32).to(device_);
  comm_.all_reduce_sum(all_exact);
  if (all_exact.item<float>() == 0.0f) {
    state_.cursor = saved.cursors[static_cast<std::size_t>(comm_.rank())];
    noise_.set_state(saved.noise_states[static_cast<std::size_t>(comm_.rank())]);
  } else {
    // Shards changed, so positions in the old orders mean nothing: start a fresh epoch past
    // every saved one, and a noise stream no earlier step used.
    std::int64_t epoch = 0;
    for (const auto& cursor : saved.cursors) epoch = std::max(epoch, cursor.epoch + 1);
    state_.cursor = {epoch, 0};
    noise_ = NoiseSource(static_cast<std::uint64_t>(config_.seed), comm_.rank(),
                         kTrainNoiseStream + 2 * static_cast<std::uint64_t>(saved.step),
                         parse_noise_type(config_.noise_type), device_);
  }
  state_.noise_state = noise_.state();
  return all_exact.item<float>() == 0.0f;
}

}  // namespace dae
