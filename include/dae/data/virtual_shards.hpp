// defines: dae::per_rank_batch, dae::images_per_virtual_shard, dae::VirtualShardLayout (the
//          training rows in a fixed number of virtual shards, whatever the world size),
//          dae::read_virtual_shards,
//          dae::VirtualShardStreams (each virtual shard's batch order and noise)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/data/dataset.hpp"
#include "dae/data/noise.hpp"

namespace dae {

// World-size invariant mode (config.global_batch_size > 0). Its images per rank per step,
// global-batch-size / world; throws one line naming the option when virtual-shards is not a
// multiple of the world size, or when batch-size was given too and differs from that.
long per_rank_batch(const Config& config, int world);

// Each virtual shard's images per step: global-batch-size / virtual-shards.
long images_per_virtual_shard(const Config& config);

// The rows of /train split into V = config.virtual_shards blocks by shard_range(total, v, V)
// alone, so a virtual shard holds the same rows at every world size. Rank r of W owns the V / W
// consecutive shards starting at r V / W: one contiguous block of rows, one hyperslab.
struct VirtualShardLayout {
  std::uint64_t total_rows = 0;  // rows in the whole split
  int shards = 0;                // V
  int first = 0;                 // this rank's first virtual shard
  int count = 0;                 // this rank's virtual shards, V / W

  // Global rows (first, count) of virtual shard `shard`.
  std::pair<std::uint64_t, std::uint64_t> rows_of(int shard) const;
  // Global rows (first, count) of this rank's virtual shards together.
  std::pair<std::uint64_t, std::uint64_t> rank_rows() const;
  // Throws one line naming the option when V is not a multiple of the world size, the split has
  // fewer rows than V, or a virtual shard has fewer rows than its images per step.
  static VirtualShardLayout make(std::uint64_t total_rows, const Config& config, int rank,
                                 int world);
};

// This rank's virtual shards' rows of `split`, read with one hyperslab selection.
Shard read_virtual_shards(const std::string& path, const std::string& split,
                          const VirtualShardLayout& layout, int rank, int world);

// Virtual shard v draws its batches from its own rows in a per-epoch order seeded by
// (seed, v, epoch) and its noise from a generator seeded by (seed, v, noise_stream): exactly what
// rank v of V draws in per-rank mode, and never a function of the rank that processes it.
class VirtualShardStreams {
 public:
  VirtualShardStreams(const VirtualShardLayout& layout, std::uint64_t seed,
                      std::uint64_t noise_stream, NoiseType type, torch::Device device);

  int count() const { return static_cast<int>(orders_.size()); }
  // Indices into this rank's block of rows (int64 [batch]) of the next batch of its i-th
  // virtual shard; advances `cursor`, that shard's place in its order.
  torch::Tensor next(int i, std::int64_t batch, BatchCursor& cursor);
  torch::Tensor corrupt(int i, const torch::Tensor& clean, double level);
  // Every owned shard's generator state, in shard order (for the checkpoint).
  std::vector<torch::Tensor> noise_states() const;
  void set_noise_state(int i, const torch::Tensor& state);

 private:
  std::vector<BatchOrder> orders_;
  std::vector<NoiseSource> noise_;
  std::vector<std::int64_t> offsets_;  // each shard's first row within this rank's block
};

}  // namespace dae
