// defines: dae::mix_seed (one well-spread seed from the numbers that name a random stream)
#pragma once

#include <cstdint>
#include <initializer_list>

namespace dae {

// Mixes numbers into one well-spread 64-bit seed (splitmix64 finaliser over each). Every random
// stream of a run (data order, noise, initial weights) is seeded by (seed, what it is for, ...).
std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts);

}  // namespace dae
