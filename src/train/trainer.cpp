#include "dae/train/trainer.hpp"

#include <ATen/autocast_mode.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <utility>

#include "dae/train/checkpoint.hpp"
#include "dae/model/cpu_kernels.hpp"
#include "dae/core/error.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/core/seed.hpp"
#include "dae/core/signals.hpp"
#include "dae/io/tensorboard.hpp"
#include "dae/train/recycle.hpp"

namespace dae {

namespace {

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
  gradients_ = buffer_.narrow(0, 0, total);
  extras_ = buffer_.narrow(0, total, kExtraSlots);
  std::int64_t offset = 0;
  for (auto& parameter : module.parameters()) {
    const std::int64_t count = parameter.numel();
    parameter.mutable_grad() = buffer_.narrow(0, offset, count).view(parameter.sizes());
    offset += count;
  }
}

void broadcast_parameters(torch::nn::Module& module, Communicator& comm) {
  torch::NoGradGuard no_grad;
  for (auto& parameter : module.parameters()) {
    torch::Tensor data = parameter.detach();
    comm.broadcast(data, 0);
  }
  for (auto& buffer : module.buffers()) comm.broadcast(buffer, 0);
}

double learning_rate_at(const Config& config, std::int64_t step) {
  const double warmup = static_cast<double>(config.lr_warmup);
  if (config.lr_warmup > 0 && step < config.lr_warmup)
    return config.lr * static_cast<double>(step) / warmup;
  if (config.lr_schedule == LrSchedule::kConstant || config.steps <= config.lr_warmup)
    return config.lr;
  // cosine: 1 at the warm-up's last step (or step 0 without one), lr_floor at config.steps.
  const double progress = std::min(
      1.0, (static_cast<double>(step) - warmup) / (static_cast<double>(config.steps) - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return config.lr * (config.lr_floor + (1.0 - config.lr_floor) * cosine);
}

torch::optim::AdamOptions adam_options(const Config& config) {
  return torch::optim::AdamOptions(config.lr)
      .eps(config.adam_eps)
      .betas({config.adam_beta1, config.adam_beta2});
}

void clip_gradient_norm(torch::Tensor& gradients, double max_norm) {
  torch::NoGradGuard no_grad;
  const torch::Tensor scale = (max_norm / (gradients.norm() + 1e-6)).clamp_max(1.0);
  gradients.mul_(scale);
}

Trainer::Trainer(const Config& config, Communicator& comm, const Shard& train, ModelPtr model,
                 Checkpointer* checkpointer, EvaluationHook evaluate)
    : config_(config),
      comm_(comm),
      device_(device_of(*model)),
      images_(train.images.to(device_)),
      model_(std::move(model)),
      checkpointer_(checkpointer),
      evaluate_(std::move(evaluate)),
      optimizer_(model_->parameters(), adam_options(config)),
      adam_(optimizer_),
      gradients_(*model_),
      fused_(make_fused_step(config, *model_,
                             config.global_batch_size > 0 ? images_per_virtual_shard(config)
                                                          : config.batch_size)),
      bf16_(config.precision == Precision::kBf16),
      order_(train.rows(), static_cast<std::uint64_t>(config.seed), comm.rank()),
      noise_(static_cast<std::uint64_t>(config.seed), comm.rank(), kTrainNoiseStream,
             config.noise_type, device_) {
  state_.noise_state = noise_.state();
  if (config.cuda_graph) {
    DAE_CHECK(device_.is_cuda(), "cuda-graph: needs a GPU, but this rank runs on " + device_.str());
    DAE_CHECK(std::string(comm.name()) == "nccl",
              std::string("cuda-graph: needs backend = nccl (this run uses ") + comm.name() +
                  "): the MPI backend's all-reduce goes through host memory, which a CUDA graph "
                  "cannot capture");
    graph_ = make_step_graph(device_);
  }
  if (config.global_batch_size > 0) {
    const VirtualShardLayout layout =
        VirtualShardLayout::make(train.total_rows, config, comm.rank(), comm.size());
    DAE_CHECK(layout.rank_rows() ==
                  std::make_pair(train.first_row, static_cast<std::uint64_t>(train.rows())),
              "Trainer: with global-batch-size the shard must hold this rank's virtual shards "
              "(read_virtual_shards)");
    shards_ = std::make_unique<VirtualShardStreams>(layout, static_cast<std::uint64_t>(config.seed),
                                                    kTrainNoiseStream,
                                                    config.noise_type, device_);
    first_shard_ = layout.first;
    shard_sum_ = std::make_unique<OrderedSum>(comm, layout.count, gradients_.buffer().numel(),
                                              gradients_.buffer().options());
    state_.virtual_shards = layout.shards;
    state_.shard_cursors.assign(static_cast<std::size_t>(layout.count), BatchCursor{});
    state_.shard_noise_states = shards_->noise_states();
  }
}

// With --profile, splits each step into phases. On the CPU a lap reads the clock. GPU work runs
// asynchronously, so there a lap records a CUDA event on the current stream, and finish() reads
// the phases from the events once the last one has completed: one wait per step, and the times
// are the device's. Disabled, it does nothing (and records nothing into a CUDA graph capture).
class PhaseClock {
 public:
  PhaseClock(bool enabled, torch::Device device,
             std::vector<std::pair<std::string, double>>& totals)
      : enabled_(enabled), device_(device), totals_(totals) {
    if (!enabled_) return;
    if (device_.is_cuda())
      record_event("");
    else
      last_ = std::chrono::steady_clock::now();
  }

  void lap(const char* phase) {
    if (!enabled_) return;
    if (device_.is_cuda()) {
      record_event(phase);
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    add(phase, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

  // Adds the GPU laps of this step (waits for the last event).
  void finish() {
    if (!enabled_ || events_.size() < 2) return;
    events_.back().second.synchronize();
    for (std::size_t i = 1; i < events_.size(); ++i)
      add(events_[i].first, events_[i - 1].second.elapsedTime(events_[i].second) / 1e3);
    events_.clear();
  }

 private:
  void record_event(const char* phase) {
    const c10::impl::VirtualGuardImpl guard(device_.type());
    events_.emplace_back(phase, c10::Event(device_.type(), c10::EventFlag::BACKEND_DEFAULT));
    events_.back().second.record(guard.getStream(device_));
  }
  void add(const char* phase, double seconds) {
    auto found = std::find_if(totals_.begin(), totals_.end(),
                              [phase](const auto& entry) { return entry.first == phase; });
    if (found == totals_.end()) found = totals_.insert(totals_.end(), {phase, 0.0});
    found->second += seconds;
  }

  bool enabled_;
  torch::Device device_;
  std::vector<std::pair<std::string, double>>& totals_;
  std::chrono::steady_clock::time_point last_;
  // The step's start (""), then one per lap; timing events (BACKEND_DEFAULT: cudaEventDefault).
  std::vector<std::pair<const char*, c10::Event>> events_;
};

namespace {

// bf16 autocast for the forward pass on `device`, restoring the previous autocast state after.
// Autocast's cast cache is off: each weight is cast once per forward anyway, and a cache must not
// outlive a CUDA graph capture.
class Bf16Autocast {
 public:
  Bf16Autocast(bool enabled, c10::DeviceType device)
      : enabled_(enabled),
        device_(device),
        was_enabled_(at::autocast::is_autocast_enabled(device)),
        previous_dtype_(at::autocast::get_autocast_dtype(device)),
        cache_was_enabled_(at::autocast::is_autocast_cache_enabled()) {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, torch::kBFloat16);
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(device_, was_enabled_);
    at::autocast::set_autocast_dtype(device_, previous_dtype_);
    at::autocast::set_autocast_cache_enabled(cache_was_enabled_);
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
  bool was_enabled_;
  at::ScalarType previous_dtype_;
  bool cache_was_enabled_;
};

// The random stream of recycled channels' fresh weights, beside the noise streams (noise.hpp:
// kTrainNoiseStream and its odd successors, the evaluation's) and the data order's.
constexpr std::uint64_t kRecycleWeightsStream = 0x7265637963;  // "recyc"

// Reading the all-reduced stop flag waits for the device: a GPU run reads it every this many
// steps (every rank at the same steps, so they still stop together), a CPU run every step.
constexpr std::int64_t kGpuStopPollSteps = 10;

}  // namespace

double Trainer::step() {
  advance();
  return read_loss();
}

double Trainer::read_loss() {
  if (loss_unread_) state_.last_loss = gradients_.loss();
  loss_unread_ = false;
  return state_.last_loss;
}

void Trainer::advance() {
  if (shards_) return advance_virtual_shards();
  PhaseClock clock(config_.profile, device_, profile_);
  torch::Tensor indices = order_.next(config_.batch_size, state_.cursor);
  // From pinned memory the copy is queued like a kernel; from pageable memory it would wait.
  if (device_.is_cuda()) indices = indices.pin_memory().to(device_, /*non_blocking=*/true);
  const torch::Tensor clean = to_unit_float(images_.index_select(0, indices));
  clock.lap("batch");
  const torch::Tensor noisy = noise_.corrupt(clean, config_.noise);
  clock.lap("noise");
  if (recycle_due(state_.step + 1)) look_for_dead_channels(noisy);

  gradients_.set_stop(checkpointer_ != nullptr && stop_requested());
  adam_.prepare(state_.step + 1, learning_rate(state_.step + 1));
  if (graph_) {
    if (clean_.defined()) {  // the graph reads the batch from where it read the first one
      clean_.copy_(clean);
      noisy_.copy_(noisy);
    } else {
      clean_ = clean;
      noisy_ = noisy;
    }
    graph_->run([this] {
      PhaseClock off(false, device_, profile_);
      forward_backward_update(off);
    });
    clock.lap("step (CUDA graph)");
  } else {
    clean_ = clean;
    noisy_ = noisy;
    forward_backward_update(clock);
  }
  clock.finish();
  ++state_.step;
  loss_unread_ = true;
  if (recycle_peaks_.defined()) recycle_dead();
}

void Trainer::advance_virtual_shards() {
  PhaseClock clock(config_.profile, device_, profile_);
  const std::int64_t per_shard = images_per_virtual_shard(config_);
  const bool stop = checkpointer_ != nullptr && stop_requested();
  adam_.prepare(state_.step + 1, learning_rate(state_.step + 1));
  // Accumulation over the owned shards, but not into one buffer: each shard's gradients stay a
  // row of their own, since a running sum would add them in an order that depends on how many
  // shards this rank has.
  for (int i = 0; i < shards_->count(); ++i) {
    torch::Tensor indices =
        shards_->next(i, per_shard, state_.shard_cursors[static_cast<std::size_t>(i)]);
    if (device_.is_cuda()) indices = indices.pin_memory().to(device_, /*non_blocking=*/true);
    clean_ = to_unit_float(images_.index_select(0, indices));
    clock.lap("batch");
    noisy_ = shards_->corrupt(i, clean_, config_.noise);
    clock.lap("noise");
    if (recycle_due(state_.step + 1)) look_for_dead_channels(noisy_);
    forward_backward(clock);
    gradients_.set_stop(stop);  // summed too: > 0 when any rank was asked to stop
    shard_sum_->mine()[i].copy_(gradients_.buffer());
  }
  shard_sum_->sum(gradients_.buffer());
  gradients_.buffer().div_(static_cast<double>(config_.virtual_shards));  // mean gradient, loss
  clock.lap("all-reduce");
  apply_update(clock);
  clock.finish();
  ++state_.step;
  loss_unread_ = true;
  if (recycle_peaks_.defined()) recycle_dead();
}

bool Trainer::recycle_due(std::int64_t step) const {
  const auto last = static_cast<std::int64_t>(config_.recycle_dead_until *
                                              static_cast<double>(config_.steps));
  return config_.recycle_dead_every > 0 && step % config_.recycle_dead_every == 0 && step <= last;
}

void Trainer::look_for_dead_channels(const torch::Tensor& images) {
  // Before the step's update, on the images it trains on: in world-size invariant mode every
  // virtual shard's batch, so what is recycled does not depend on the number of ranks.
  const torch::Tensor peaks = channel_peaks(*model_, images);
  recycle_peaks_ = recycle_peaks_.defined() ? torch::maximum(recycle_peaks_, peaks) : peaks;
}

void Trainer::recycle_dead() {
  torch::Tensor peaks = std::exchange(recycle_peaks_, torch::Tensor());
  // Peaks are >= 0, so a sum over ranks is 0 exactly where every rank's is: whatever order a
  // backend adds in, every rank finds the same channels dead.
  comm_.all_reduce_sum(peaks);
  if (!peaks.le(0).any().item<bool>()) return;  // nothing died: no fresh model to draw
  // Fresh weights from (seed, step): the same on every rank, and again after a resume.
  const ModelPtr fresh = make_seeded_model(
      config_.model, mix_seed({static_cast<std::uint64_t>(config_.seed), kRecycleWeightsStream,
                               static_cast<std::uint64_t>(state_.step)}));
  const std::vector<DeadChannels> recycled =
      recycle_dead_channels(*model_, *fresh, optimizer_, peaks);
  if (comm_.rank() == 0 && total_dead(recycled) > 0) {
    std::printf("step %lld: recycled dead ReLU channels (0 for every training image of the "
                "step): %s\n",
                static_cast<long long>(state_.step), describe_dead(recycled).c_str());
    std::fflush(stdout);
  }
}

void Trainer::forward_backward_update(PhaseClock& clock) {
  forward_backward(clock);
  comm_.all_reduce_mean(gradients_.buffer());
  clock.lap("all-reduce");
  apply_update(clock);
}

void Trainer::apply_update(PhaseClock& clock) {
  // After the reduction: every rank clips the same averaged gradient, so replicas stay equal.
  if (config_.clip_grad_norm > 0)
    clip_gradient_norm(gradients_.gradients(), config_.clip_grad_norm);
  adam_.update();
  clock.lap("optimizer");
}

void Trainer::forward_backward(PhaseClock& clock) {
  if (fused_) {  // overwrites the gradients: nothing to zero
    // One phase: the fused step runs forward and backward part by part (fused_conv_dae.hpp).
    gradients_.set_loss(fused_->train_step(noisy_, clean_).detach());
    last_output_ = fused_->output();
    clock.lap("forward+backward");
    return;
  }
  gradients_.zero();
  torch::Tensor output;
  {
    const Bf16Autocast autocast(bf16_, device_.type());
    output = model_->forward(noisy_);
  }
  const torch::Tensor loss = torch::mse_loss(output.to(torch::kFloat32), clean_);
  clock.lap("forward");
  loss.backward();
  last_output_ = output.detach();
  gradients_.set_loss(loss.detach());
  clock.lap("backward");
}

FitResult Trainer::fit() {
  FitResult result;
  const std::int64_t first_step = state_.step;
  const double samples_per_step = config_.global_batch_size > 0
                                      ? static_cast<double>(config_.global_batch_size)
                                      : static_cast<double>(config_.batch_size) * comm_.size();
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // An earlier run's stop record is history once this run trains on: left in place, it would
  // tell a script that this run, too, stopped at that checkpoint (after a crash, say).
  if (checkpointer_ != nullptr) checkpointer_->clear_stop_record();

  double warm_at = -1;  // seconds when kWarmupSteps were done
  while (state_.step < config_.steps) {
    advance();
    if (state_.step - first_step == kWarmupSteps) warm_at = seconds_since_start();
    const bool read_stop = !device_.is_cuda() || state_.step % kGpuStopPollSteps == 0 ||
                           state_.step == config_.steps;
    if (checkpointer_ != nullptr && read_stop && gradients_.stop_requested()) {
      const std::string path = save_checkpoint();
      checkpointer_->record_stop(state_.step, path);
      if (comm_.rank() == 0)
        std::printf("stop signal: checkpoint %s written at step %lld, exiting with %d\n",
                    path.c_str(), static_cast<long long>(state_.step), kExitPreempted);
      result.stopped = true;
      break;
    }
    if (state_.step % config_.log_every == 0 || state_.step == config_.steps) {
      require_finite();
      const double loss = read_loss();
      state_.loss_history.emplace_back(state_.step, loss);
      if (comm_.rank() == 0) {
        const double elapsed = seconds_since_start();
        const double done = static_cast<double>(state_.step - first_step);
        const double rate = done * samples_per_step / elapsed;
        const double eta = elapsed / done * static_cast<double>(config_.steps - state_.step);
        // From this batch alone (one forward every log_every steps): cheap, and a unit dead
        // here is 0 for 50 images at once, which the test set confirms at each evaluation.
        std::vector<DeadChannels> layout;
        const torch::Tensor peaks = channel_peaks(*model_, noisy_, &layout);
        const std::vector<DeadChannels> dead = dead_channels(peaks, std::move(layout));
        std::int64_t channels = 0;
        for (const auto& layer : dead) channels += layer.channels;
        std::printf("step %6lld/%lld | loss %.6f | %8.0f samples/s | ETA %s | dead %lld/%lld\n",
                    static_cast<long long>(state_.step), static_cast<long long>(config_.steps),
                    loss, rate, format_duration(eta).c_str(),
                    static_cast<long long>(total_dead(dead)), static_cast<long long>(channels));
        if (total_dead(dead) > 0)
          std::fprintf(stderr,
                       "%s: warning: step %lld: dead ReLU channels (0 for every image of "
                       "the batch): %s\n",
                       comm_.mpi().program().c_str(), static_cast<long long>(state_.step), describe_dead(dead).c_str());
        if (tensorboard_ != nullptr) {
          tensorboard_->scalar("train/loss", state_.step, loss);
          tensorboard_->scalar("train/learning_rate", state_.step, learning_rate(state_.step));
          tensorboard_->scalar("train/samples_per_s", state_.step, rate);
          for (const auto& layer : dead)
            tensorboard_->scalar("dead_channels/" + layer.layer, state_.step,
                                 static_cast<double>(layer.dead));
          tensorboard_->flush();
        }
        if (!warned_dead_output_ && last_output_.max().item<float>() == 0.0f) {
          std::fprintf(stderr,
                       "%s: warning: every output of the last batch is 0: a ReLU layer "
                       "has died and the loss is stuck at mean(x^2); restart with another seed, "
                       "a lower lr or output-activation = none\n",
                       comm_.mpi().program().c_str());
          warned_dead_output_ = true;
        }
        std::fflush(stdout);
      }
    }
    if (evaluate_ && config_.eval_every > 0 && state_.step % config_.eval_every == 0 &&
        state_.step != config_.steps)
      evaluate_(state_);
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
  result.final_loss = read_loss();
  for (auto& [phase, seconds] : profile_) seconds /= static_cast<double>(result.steps);
  return result;
}

std::string Trainer::kernels() const {
  std::string text = fused_ ? std::string("fused (") + kernels::isa() + ")" : "libtorch";
  if (bf16_) text += ", bf16 autocast";
  if (graph_) text += ", CUDA graph";
  return text;
}

void Trainer::require_finite() {
  bool finite = std::isfinite(read_loss());
  for (const auto& parameter : model_->parameters())
    finite = finite && torch::isfinite(parameter).all().item<bool>();
  if (finite) return;
  char message[256];
  std::snprintf(message, sizeof message,
                "training diverged at step %lld: the loss is %g (lr %g); stopped before writing "
                "a checkpoint of it, the ones already written are kept: resume from the last "
                "with a lower --lr",
                static_cast<long long>(state_.step), state_.last_loss, config_.lr);
  if (comm_.rank() == 0) {
    std::fprintf(stderr, "%s: %s\n", comm_.mpi().program().c_str(), message);
    std::fflush(stderr);
  }
  throw ReportedError(message);
}

std::string Trainer::save_checkpoint() {
  DAE_CHECK(checkpointer_ != nullptr, "Trainer: no checkpointer to save with");
  require_finite();
  state_.noise_state = noise_.state();
  if (shards_) state_.shard_noise_states = shards_->noise_states();
  return checkpointer_->save(*model_, optimizer_, state_);
}

bool Trainer::resume_from(const CheckpointData& saved) {
  if (shards_ || saved.virtual_shards > 0) return resume_virtual_shards(saved);
  state_.step = saved.step;
  state_.last_loss = saved.last_loss;
  loss_unread_ = false;
  state_.loss_history = saved.loss_history;
  const bool exact =
      saved.world_size == comm_.size() &&
      saved.noise_states[static_cast<std::size_t>(comm_.rank())].numel() == noise_.state().numel();
  // Every rank must take the same branch, or their data orders would mix old and new.
  const bool every_rank_exact = comm_.all_agree(exact);
  if (every_rank_exact) {
    state_.cursor = saved.cursors[static_cast<std::size_t>(comm_.rank())];
    try {
      noise_.set_state(saved.noise_states[static_cast<std::size_t>(comm_.rank())]);
    } catch (const std::exception& error) {
      throw Error("checkpoint: /state/noise_rng: rank " + std::to_string(comm_.rank()) +
                  "'s noise generator state is not valid (" + one_line(error) + ")");
    }
  } else {
    // Shards changed, so positions in the old orders mean nothing: start a fresh epoch past
    // every saved one, and a noise stream no earlier step used.
    std::int64_t epoch = 0;
    for (const auto& cursor : saved.cursors) epoch = std::max(epoch, cursor.epoch + 1);
    state_.cursor = {epoch, 0};
    noise_ = NoiseSource(static_cast<std::uint64_t>(config_.seed), comm_.rank(),
                         kTrainNoiseStream + 2 * static_cast<std::uint64_t>(saved.step),
                         config_.noise_type, device_);
  }
  state_.noise_state = noise_.state();
  return every_rank_exact;
}

bool Trainer::resume_virtual_shards(const CheckpointData& saved) {
  // Every rank reads the same file, so every rank throws the same line here, before any
  // collective.
  if (!shards_)
    throw Error(
        "global-batch-size: the checkpoint was written in world-size invariant mode "
        "(virtual-shards = " +
        std::to_string(saved.virtual_shards) +
        "); per-rank mode cannot continue its virtual shards' streams: resume it with "
        "global-batch-size and virtual-shards " +
        std::to_string(saved.virtual_shards));
  if (saved.virtual_shards == 0)
    throw Error("global-batch-size: the checkpoint was written in per-rank mode (" +
                std::to_string(saved.world_size) +
                " ranks), which has no virtual shards to "
                "continue: resume it without global-batch-size, or start a fresh run-dir");
  if (saved.virtual_shards != state_.virtual_shards)
    throw Error("virtual-shards: the checkpoint has " + std::to_string(saved.virtual_shards) +
                " virtual shards, this run " + std::to_string(state_.virtual_shards) +
                " (their rows and streams would differ): give virtual-shards " +
                std::to_string(saved.virtual_shards));
  state_.step = saved.step;
  state_.last_loss = saved.last_loss;
  loss_unread_ = false;
  state_.loss_history = saved.loss_history;
  for (int i = 0; i < shards_->count(); ++i) {
    const auto shard = static_cast<std::size_t>(first_shard_ + i);
    state_.shard_cursors[static_cast<std::size_t>(i)] = saved.cursors[shard];
    try {
      shards_->set_noise_state(i, saved.noise_states[shard]);
    } catch (const std::exception& error) {
      // A CUDA generator's state does not fit a CPU one: the trajectory cannot continue exactly.
      throw Error("checkpoint: /state/noise_rng: virtual shard " + std::to_string(shard) +
                  "'s noise generator state does not fit this run's (written on another kind of "
                  "device?): " +
                  one_line(error));
    }
  }
  state_.shard_noise_states = shards_->noise_states();
  return true;
}

}  // namespace dae
