#include "dae/data/virtual_shards.hpp"

#include "dae/core/error.hpp"

namespace dae {

long per_rank_batch(const Config& config, int world) {
  const long shards = config.virtual_shards;
  if (shards % world != 0)
    throw Error("config: virtual-shards: " + std::to_string(shards) +
                " is not a multiple of the world size " + std::to_string(world) +
                " (every rank owns the same number of virtual shards; run on a divisor of it, "
                "or give another virtual-shards)");
  const long per_rank = config.global_batch_size / world;
  if (config.batch_size_set && config.batch_size != per_rank)
    throw Error("config: batch-size: " + std::to_string(config.batch_size) +
                " images per rank does not match global-batch-size " +
                std::to_string(config.global_batch_size) + " over " + std::to_string(world) +
                " ranks (" + std::to_string(per_rank) + " per rank); give global-batch-size alone");
  return per_rank;
}

long images_per_virtual_shard(const Config& config) {
  return config.global_batch_size / config.virtual_shards;
}

std::pair<std::uint64_t, std::uint64_t> VirtualShardLayout::rows_of(int shard) const {
  return shard_range(total_rows, shard, shards);
}

std::pair<std::uint64_t, std::uint64_t> VirtualShardLayout::rank_rows() const {
  const std::uint64_t begin = rows_of(first).first;
  const auto [last_first, last_count] = rows_of(first + count - 1);
  return {begin, last_first + last_count - begin};
}

VirtualShardLayout VirtualShardLayout::make(std::uint64_t total_rows, const Config& config,
                                            int rank, int world) {
  per_rank_batch(config, world);  // the same checks wherever a layout is made
  const long shards = config.virtual_shards;
  if (total_rows < static_cast<std::uint64_t>(shards))
    throw Error("config: virtual-shards: " + std::to_string(shards) +
                " virtual shards need at "
                "least as many training rows, the data has " +
                std::to_string(total_rows));
  // shard_range gives the first total % V shards one row more: the last shard is the smallest.
  const std::uint64_t smallest = total_rows / static_cast<std::uint64_t>(shards);
  const long per_shard = images_per_virtual_shard(config);
  // A batch larger than its shard would repeat images within every step.
  if (static_cast<std::uint64_t>(per_shard) > smallest)
    throw Error("config: global-batch-size: " + std::to_string(config.global_batch_size) +
                " gives each of the " + std::to_string(shards) + " virtual shards " +
                std::to_string(per_shard) + " images per step, more than its " +
                std::to_string(smallest) +
                " rows: use a smaller global batch or fewer "
                "virtual shards");
  VirtualShardLayout layout;
  layout.total_rows = total_rows;
  layout.shards = static_cast<int>(shards);
  layout.count = layout.shards / world;
  layout.first = rank * layout.count;
  return layout;
}

Shard read_virtual_shards(const std::string& path, const std::string& split,
                          const VirtualShardLayout& layout, int rank, int world) {
  const auto [first, count] = layout.rank_rows();
  try {
    return Shard::read(path, split, first, count);
  } catch (const Error& error) {
    // Only this rank's rows may be unreadable; the job's one line must say whose they are.
    throw Error(std::string(error.what()) + " (rank " + std::to_string(rank) + " of " +
                std::to_string(world) + "'s virtual shards " + std::to_string(layout.first) + "-" +
                std::to_string(layout.first + layout.count - 1) + ")");
  }
}

VirtualShardStreams::VirtualShardStreams(const VirtualShardLayout& layout, std::uint64_t seed,
                                         std::uint64_t noise_stream, NoiseType type,
                                         torch::Device device) {
  const std::uint64_t base = layout.rank_rows().first;
  for (int i = 0; i < layout.count; ++i) {
    const int shard = layout.first + i;
    const auto [first, rows] = layout.rows_of(shard);
    orders_.emplace_back(static_cast<std::int64_t>(rows), seed, shard);
    noise_.emplace_back(seed, shard, noise_stream, type, device);
    offsets_.push_back(static_cast<std::int64_t>(first - base));
  }
}

torch::Tensor VirtualShardStreams::next(int i, std::int64_t batch, BatchCursor& cursor) {
  const auto index = static_cast<std::size_t>(i);
  return orders_[index].next(batch, cursor).add_(offsets_[index]);
}

torch::Tensor VirtualShardStreams::corrupt(int i, const torch::Tensor& clean, double level) {
  return noise_[static_cast<std::size_t>(i)].corrupt(clean, level);
}

std::vector<torch::Tensor> VirtualShardStreams::noise_states() const {
  std::vector<torch::Tensor> states;
  for (const NoiseSource& source : noise_) states.push_back(source.state());
  return states;
}

void VirtualShardStreams::set_noise_state(int i, const torch::Tensor& state) {
  noise_[static_cast<std::size_t>(i)].set_state(state);
}

}  // namespace dae
