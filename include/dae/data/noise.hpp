// defines: dae::NoiseSource (corruption from an explicit, savable generator) and the noise
//          stream ids
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "dae/core/config.hpp"

namespace dae {

// How a clean image is corrupted at level c (0 leaves it clean), by NoiseType (core/config.hpp):
//   gaussian     x + c * N(0, 1), no clipping (the seed's corruption)
//   salt-pepper  a fraction c of the pixels replaced by 0 or 1 (each with probability 1/2)
//   mask         a fraction c of the pixels set to 0: the network sees only the rest
//                (c = 0.67 keeps a third of the image: the seed's question 2)

// The streams of a run's noise: training uses kTrainNoiseStream (and, after a resume on another
// world size, kTrainNoiseStream + 2 * step: odd numbers); the evaluation's blocks and grids use
// even ones, so no two sources ever share a stream.
inline constexpr std::uint64_t kTrainNoiseStream = 1;
inline constexpr std::uint64_t kEvalNoiseStream = 2;  // + 1000 * block
inline constexpr std::uint64_t kGridNoiseStream = 4;

// A source is seeded by (seed, owner, stream): `owner` tells apart the sources of one stream
// (the rank for training noise, the noise level's index in the evaluation), so runs are
// reproducible and no two draw the same noise.
class NoiseSource {
 public:
  NoiseSource(std::uint64_t seed, int owner, std::uint64_t stream, NoiseType type,
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
