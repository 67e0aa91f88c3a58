#include "dae/core/seed.hpp"

namespace dae {

std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  for (std::uint64_t part : parts) {
    state ^= part + 0x9E3779B97F4A7C15ull + (state << 6) + (state >> 2);
    state = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9ull;
    state = (state ^ (state >> 27)) * 0x94D049BB133111EBull;
    state ^= state >> 31;
  }
  return state;
}

}  // namespace dae
