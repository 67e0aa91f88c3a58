// Times the ways to sum the seed network's gradient buffer (26 448 gradients + loss + stop flag)
// over ranks, to choose the world-size invariant mode's reduction (README, "World-size
// invariant training"). Usage: mpirun -np W dae_reduction_bench [virtual_shards=8] [calls=2000]
//   all-reduce    per-rank mode: one float all-reduce of the buffer (its bits depend on W and on
//                 MPI's algorithm)
//   ordered sum   invariant mode: every virtual shard's buffer all-gathered, then added in
//                 virtual-shard order (OrderedSum)
//   fixed point   the alternative: an all-reduced max |g| sets one scale, each rank turns its
//                 shards' buffers into int64 and adds them (exact, so in any order), one int64
//                 all-reduce, back to float
// Prints microseconds per call, the slowest rank's mean after 50 warm-up calls.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "dae/dist/mpi.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/dist/ordered_sum.hpp"

namespace {

constexpr std::int64_t kBuffer = 26448 + 2;

double microseconds_per_call(const dae::MpiComm& world, int calls,
                             const std::function<void()>& call) {
  for (int i = 0; i < 50; ++i) call();
  world.barrier("the benchmark's start");
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) call();
  double mean =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      calls;
  world.all_reduce(&mean, 1, MPI_DOUBLE, MPI_MAX, "the benchmark's result");
  return mean;
}

}  // namespace

int main(int argc, char** argv) {
  return dae::run_job("dae_reduction_bench", argc, argv, [&](dae::MpiComm& world) {
    const int shards = argc > 1 ? std::atoi(argv[1]) : 8;
    const int calls = argc > 2 ? std::atoi(argv[2]) : 2000;
    if (shards < 1 || shards % world.size() != 0 || calls < 1)
      throw dae::Error(
          "usage: dae_reduction_bench [virtual shards, a multiple of the ranks] "
          "[calls]");
    torch::set_num_threads(1);
    dae::MpiCommunicator comm(world);
    const std::int64_t own = shards / world.size();
    torch::manual_seed(world.rank());
    const torch::Tensor gradients = torch::randn({own, kBuffer}).mul_(1e-3);

    torch::Tensor buffer = gradients[0].clone();
    const double all_reduce = microseconds_per_call(world, calls, [&] {
      buffer.copy_(gradients[0]);
      comm.all_reduce_mean(buffer);
    });

    dae::OrderedSum ordered(comm, own, kBuffer, gradients.options());
    const double ordered_sum = microseconds_per_call(world, calls, [&] {
      ordered.mine().copy_(gradients);
      ordered.sum(buffer);
      buffer.div_(static_cast<double>(shards));
    });

    // Plain loops, as a production version would be (LibTorch's int64 ops are far slower).
    std::vector<std::int64_t> fixed(static_cast<std::size_t>(kBuffer));
    const double fixed_point = microseconds_per_call(world, calls, [&] {
      const float* values = gradients.data_ptr<float>();
      const std::int64_t count = gradients.numel();
      float largest = 0;
      for (std::int64_t i = 0; i < count; ++i) largest = std::max(largest, std::fabs(values[i]));
      world.all_reduce(&largest, 1, MPI_FLOAT, MPI_MAX, "the largest gradient");
      // The sum of all V shards must fit in int64: V times the largest |g| scaled below 2^62.
      const double scale =
          largest > 0 ? std::ldexp(1.0, 61 - std::ilogb(largest * static_cast<float>(shards)))
                      : 1.0;
      std::fill(fixed.begin(), fixed.end(), 0);
      for (std::int64_t row = 0; row < own; ++row)
        for (std::int64_t i = 0; i < kBuffer; ++i)
          fixed[static_cast<std::size_t>(i)] += std::llrint(values[row * kBuffer + i] * scale);
      world.all_reduce(fixed.data(), static_cast<int>(kBuffer), MPI_INT64_T, MPI_SUM,
                       "the fixed-point sum");
      float* out = buffer.data_ptr<float>();
      for (std::int64_t i = 0; i < kBuffer; ++i)
        out[i] = static_cast<float>(static_cast<double>(fixed[static_cast<std::size_t>(i)]) /
                                    (scale * shards));
    });

    if (world.rank() == 0)
      std::printf(
          "%d ranks, %d virtual shards, %lld floats: all-reduce %.1f us, ordered sum "
          "%.1f us, fixed point %.1f us per call\n",
          world.size(), shards, static_cast<long long>(kBuffer), all_reduce, ordered_sum,
          fixed_point);
    return 0;
  });
}
