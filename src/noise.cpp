#include "dae/noise.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "dae/dataset.hpp"

namespace dae {

NoiseSource::NoiseSource(std::uint64_t seed, int rank, std::uint64_t stream, torch::Device device)
    : generator_(device.is_cpu()
                     ? at::make_generator<at::CPUGeneratorImpl>()
                     : at::globalContext().defaultGenerator(device).clone()) {
  generator_.set_current_seed(mix_seed({seed, static_cast<std::uint64_t>(rank), stream}));
}

torch::Tensor NoiseSource::corrupt(const torch::Tensor& clean, double coefficient) {
  if (coefficient == 0.0) return clean.clone();
  torch::Tensor noise = at::normal(0.0, 1.0, clean.sizes(), generator_, clean.options());
  return noise.mul_(coefficient).add_(clean);
}

torch::Tensor NoiseSource::state() const { return generator_.get_state(); }

void NoiseSource::set_state(const torch::Tensor& state) { generator_.set_state(state); }

}  // namespace dae
