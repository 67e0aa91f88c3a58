#include "dae/data/noise.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include "dae/core/error.hpp"
#include "dae/core/seed.hpp"

namespace dae {

NoiseSource::NoiseSource(std::uint64_t seed, int owner, std::uint64_t stream, NoiseType type,
                         torch::Device device)
    : type_(type),
      generator_(device.is_cpu() ? at::make_generator<at::CPUGeneratorImpl>()
                                 : at::globalContext().defaultGenerator(device).clone()) {
  generator_.set_current_seed(mix_seed({seed, static_cast<std::uint64_t>(owner), stream}));
}

torch::Tensor NoiseSource::corrupt(const torch::Tensor& clean, double level) {
  if (level == 0.0) return clean.clone();
  switch (type_) {
    case NoiseType::kGaussian: {
      torch::Tensor noise = at::normal(0.0, 1.0, clean.sizes(), generator_, clean.options());
      return noise.mul_(level).add_(clean);
    }
    case NoiseType::kSaltPepper: {
      const torch::Tensor hit = at::rand(clean.sizes(), generator_, clean.options()).lt(level);
      const torch::Tensor salt = at::rand(clean.sizes(), generator_, clean.options()).ge(0.5);
      return torch::where(hit, salt.to(clean.scalar_type()), clean);
    }
    case NoiseType::kMask: {
      const torch::Tensor keep = at::rand(clean.sizes(), generator_, clean.options()).ge(level);
      return clean * keep;
    }
  }
  throw Error("NoiseSource: unknown noise type");
}

torch::Tensor NoiseSource::state() const { return generator_.get_state(); }

void NoiseSource::set_state(const torch::Tensor& state) { generator_.set_state(state); }

}  // namespace dae
