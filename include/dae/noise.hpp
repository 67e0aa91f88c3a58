// defines: dae::NoiseType, dae::parse_noise_type, dae::NoiseSource (corruption from an explicit,
//          savable generator)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace dae {

// How a clean image is corrupted at level c (0 leaves it clean):
//   gaussian     x + c * N(0, 1), no clipping (the seed's corruption)
//   salt-pepper  a fraction c of the pixels replaced by 0 or 1 (each with probability 1/2)
//   mask         a fraction c of the pixels set to 0: the network sees only the rest
//                (c = 0.67 keeps a third of the image: the seed's question 2)
enum class NoiseType { kGaussian, kSaltPepper, kMask };
NoiseType parse_noise_type(const std::string& name);

// Each rank owns one source, seeded by (seed, rank, stream), so runs are reproducible and ranks
// draw different noise.
class NoiseSource {
 public:
  NoiseSource(std::uint64_t seed, int rank, std::uint64_t stream, NoiseType type,
              torch::Device device = torch::kCPU);

  torch::Tensor corrupt(const torch::Tensor& clean, double level);

  // The generator's full state, to save in a checkpoint and restore bit-exactly.
  torch::Tensor state() const;
  void set_state(const torch::Tensor& state);

 private:
  NoiseType type_;
  at::Generator generator_;
};

}  // namespace dae
