// defines: dae::NoiseSource (additive Gaussian corruption from an explicit, savable generator)
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace dae {

// noisy = clean + c * N(0, 1), no clipping (the seed's corruption). Each rank owns one source,
// seeded by (seed, rank, stream), so runs are reproducible and ranks draw different noise.
class NoiseSource {
 public:
  NoiseSource(std::uint64_t seed, int rank, std::uint64_t stream,
              torch::Device device = torch::kCPU);

  torch::Tensor corrupt(const torch::Tensor& clean, double coefficient);

  // The generator's full state, to save in a checkpoint and restore bit-exactly.
  torch::Tensor state() const;
  void set_state(const torch::Tensor& state);

 private:
  at::Generator generator_;
};

}  // namespace dae
