#include "dae/trainer.hpp"

#include <chrono>
#include <cstdio>

#include "dae/checkpoint.hpp"
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

void FlatGradients::set_loss_and_stop(double loss, bool stop) {
  extras_[0].fill_(loss);
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

torch::Tensor to_unit_float(const torch::Tensor& images) {
  return images.unsqueeze(1).to(torch::kFloat32).div_(255.0);
}

Trainer::Trainer(const Config& config, Communicator& comm, const Shard& train, ModelPtr model,
                 Checkpointer* checkpointer, Evaluator* evaluator)
    : config_(config),
      comm_(comm),
      train_(train),
      model_(std::move(model)),
      checkpointer_(checkpointer),
      evaluator_(evaluator),
      optimizer_(model_->parameters(), torch::optim::AdamOptions(config.lr)),
      gradients_(*model_),
      order_(train.rows(), static_cast<std::uint64_t>(config.seed), comm.rank()),
      noise_(static_cast<std::uint64_t>(config.seed), comm.rank(), kTrainNoiseStream,
             parse_noise_type(config.noise_type)) {
  state_.noise_state = noise_.state();
}

double Trainer::step() {
  const torch::Tensor indices = order_.next(config_.batch_size, state_.cursor);
  const torch::Tensor clean = to_unit_float(train_.images.index_select(0, indices));
  const torch::Tensor noisy = noise_.corrupt(clean, config_.noise);

  gradients_.zero();
  const torch::Tensor output = model_->forward(noisy);
  const torch::Tensor loss = torch::mse_loss(output, clean);
  loss.backward();
  last_output_ = output.detach();
  gradients_.set_loss_and_stop(loss.item<double>(), checkpointer_ != nullptr && stop_requested());
  comm_.all_reduce_mean(gradients_.buffer());
  optimizer_.step();

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

  while (state_.step < config_.steps) {
    const double loss = step();
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
  result.final_loss = state_.last_loss;
  return result;
}

std::string Trainer::save_checkpoint() {
  DAE_CHECK(checkpointer_ != nullptr, "Trainer: no checkpointer to save with");
  state_.noise_state = noise_.state();
  return checkpointer_->save(*model_, optimizer_, state_);
}

void Trainer::resume_from(const CheckpointData& saved) {
  state_.step = saved.step;
  state_.last_loss = saved.last_loss;
  state_.loss_history = saved.loss_history;
  if (saved.world_size == comm_.size()) {
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
                         parse_noise_type(config_.noise_type));
  }
  state_.noise_state = noise_.state();
}

}  // namespace dae
