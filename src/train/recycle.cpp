#include "dae/train/recycle.hpp"

#include <string>

#include "dae/core/error.hpp"
#include "dae/train/fused_adam.hpp"

namespace dae {

std::vector<DeadChannels> recycle_dead_channels(Denoiser& model, Denoiser& fresh,
                                                torch::optim::Adam& optimizer,
                                                const torch::Tensor& peaks) {
  torch::NoGradGuard no_grad;
  const torch::Tensor dead = peaks.cpu().le(0);
  const auto live_parameters = model.named_parameters();
  const auto fresh_parameters = fresh.named_parameters();
  std::vector<DeadChannels> recycled;
  std::int64_t first = 0;  // the layer's first entry in `peaks`
  for (const ChannelWiring& layer : model.channel_wiring()) {
    const torch::Tensor& reference = live_parameters[layer.incoming.front().parameter];
    const std::int64_t channels = reference.size(layer.incoming.front().dim);
    DAE_CHECK(first + channels <= dead.size(0),
              "recycle_dead_channels: the peaks do not cover layer " + layer.layer);
    recycled.push_back({layer.layer, 0, channels});
    for (std::int64_t channel = 0; channel < channels; ++channel) {
      if (!dead[first + channel].item<bool>()) continue;
      ++recycled.back().dead;
      // The slice of `parameter` along `dim` that belongs to this channel, and its moments.
      auto restart = [&](const ParameterSlice& slice, const torch::Tensor* source) {
        torch::Tensor parameter = live_parameters[slice.parameter];
        torch::Tensor target = parameter.select(slice.dim, channel);
        if (source != nullptr)
          target.copy_(source->select(slice.dim, channel));
        else
          target.zero_();
        // No momentum from before; a second moment of the parameter's usual size. Zeroed, it
        // would make the slice's first steps sign steps of 3 x lr on every weight at once
        // (Adam's fresh start without the bias correction of step 1), which pushed recycled
        // channels dead again within 100 steps on MNIST.
        torch::optim::AdamParamState& adam = adam_state_of(optimizer, parameter);
        adam.exp_avg().select(slice.dim, channel).zero_();
        adam.exp_avg_sq().select(slice.dim, channel).fill_(adam.exp_avg_sq().mean());
      };
      for (const ParameterSlice& slice : layer.incoming)
        restart(slice, &fresh_parameters[slice.parameter]);
      for (const ParameterSlice& slice : layer.outgoing) restart(slice, nullptr);
    }
    first += channels;
  }
  return recycled;
}

}  // namespace dae
