// World-size invariant mode, single process: the virtual-shard layout does not depend on the
// world size, each rank reads exactly its virtual shards' rows, a virtual shard's batches and
// noise are the same whichever rank owns it, the options' bad values are one line each, and a
// checkpoint carries one position and noise state per virtual shard.
#include <gtest/gtest.h>

#include "dae/train/checkpoint.hpp"
#include "dae/core/config.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"
#include "dae/model/model.hpp"
#include "dae/data/virtual_shards.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

Config invariant(long global, long shards) {
  Config config;
  config.global_batch_size = global;
  config.virtual_shards = shards;
  return config;
}

std::string error_of(const std::function<void()>& work) {
  try {
    work();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

Config parse(std::vector<std::string> args) {
  args.insert(args.begin(), "dae_dist");
  args.insert(args.begin() + 1, {"--data", "d.h5"});
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return parse_config(static_cast<int>(argv.size()), argv.data());
}

TEST(VirtualShards, RowsDoNotDependOnTheWorldSize) {
  const Config config = invariant(24, 12);
  const std::uint64_t total = 1003;  // not a multiple of 12: shards differ by one row
  const VirtualShardLayout alone = VirtualShardLayout::make(total, config, 0, 1);
  for (int world : {1, 2, 3, 4, 6, 12}) {
    std::uint64_t next_row = 0;
    for (int rank = 0; rank < world; ++rank) {
      const VirtualShardLayout layout = VirtualShardLayout::make(total, config, rank, world);
      EXPECT_EQ(layout.count, 12 / world);
      EXPECT_EQ(layout.first, rank * 12 / world);
      const auto [first, count] = layout.rank_rows();
      EXPECT_EQ(first, next_row) << "world " << world << ", rank " << rank;
      std::uint64_t covered = 0;
      for (int i = 0; i < layout.count; ++i) {
        EXPECT_EQ(layout.rows_of(layout.first + i), alone.rows_of(layout.first + i));
        covered += layout.rows_of(layout.first + i).second;
      }
      EXPECT_EQ(count, covered);
      next_row = first + count;
    }
    EXPECT_EQ(next_row, total) << "world " << world << ": every row owned once";
  }
}

TEST(VirtualShards, EachRankReadsExactlyItsVirtualShardsRows) {
  testing::TempDir dir;
  const std::string path = dir.file("rows.h5");
  write_data_file(path, testing::row_pattern_split(100), testing::row_pattern_split(10), "rows");
  const Config config = invariant(8, 8);
  for (int rank = 0; rank < 4; ++rank) {
    const VirtualShardLayout layout = VirtualShardLayout::make(100, config, rank, 4);
    const Shard shard = read_virtual_shards(path, "train", layout, rank, 4);
    const auto [first, count] = layout.rank_rows();
    ASSERT_EQ(shard.rows(), static_cast<std::int64_t>(count));
    EXPECT_EQ(shard.first_row, first);
    for (std::int64_t row = 0; row < shard.rows(); ++row)
      EXPECT_EQ(shard.images[row][0][0].item<int>(),
                static_cast<int>((first + static_cast<std::uint64_t>(row)) % 251));
  }
}

TEST(VirtualShards, ShardStreamsAreTheSameWhicheverRankOwnsThem) {
  const Config config = invariant(24, 12);
  const std::uint64_t total = 600;
  const VirtualShardLayout alone = VirtualShardLayout::make(total, config, 0, 1);
  VirtualShardStreams reference(alone, 5, 1, NoiseType::kGaussian, torch::kCPU);
  std::vector<BatchCursor> cursors(12);
  std::vector<torch::Tensor> rows, noise;
  const torch::Tensor clean = torch::rand({2, 1, 28, 28});
  for (int step = 0; step < 30; ++step)  // several epochs of 50-row shards
    for (int v = 0; v < 12; ++v) {
      rows.push_back(reference.next(v, 2, cursors[v]));
      noise.push_back(reference.corrupt(v, clean, 0.5));
    }
  const VirtualShardLayout layout = VirtualShardLayout::make(total, config, 2, 4);  // 6, 7, 8
  VirtualShardStreams owned(layout, 5, 1, NoiseType::kGaussian, torch::kCPU);
  std::vector<BatchCursor> own_cursors(3);
  const std::int64_t offset = static_cast<std::int64_t>(layout.rank_rows().first);
  for (int step = 0; step < 30; ++step)
    for (int i = 0; i < 3; ++i) {
      const std::size_t k = static_cast<std::size_t>(step * 12 + layout.first + i);
      // The same global rows, the same noise bits.
      EXPECT_TRUE(owned.next(i, 2, own_cursors[i]).add(offset).equal(rows[k]));
      EXPECT_TRUE(owned.corrupt(i, clean, 0.5).equal(noise[k]));
    }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(own_cursors[i].epoch, cursors[layout.first + i].epoch);
    EXPECT_EQ(own_cursors[i].position, cursors[layout.first + i].position);
  }
}

TEST(VirtualShards, BadValuesAreOneLineNamingTheOption) {
  EXPECT_EQ(error_of([] {
              parse({"--global-batch-size", "100"});
            }),
            "config: global-batch-size: 100 is not a multiple of virtual-shards (8): every "
            "virtual shard takes the same number of images per step");
  EXPECT_EQ(error_of([] {
              parse({"--virtual-shards", "12"});
            }),
            "config: virtual-shards: needs global-batch-size (per-rank mode, the default, has no "
            "virtual shards)");
  EXPECT_NE(error_of([] {
              parse({"--global-batch-size", "-8"});
            }).find("global-batch-size: must be"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse({"--global-batch-size", "96", "--virtual-shards", "0"});
            }).find("virtual-shards: must be >= 1"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse({"--global-batch-size", "96", "--cuda-graph"});
            }).find("cuda-graph: not with global-batch-size"),
            std::string::npos);
  const Config config = parse({"--global-batch-size", "96"});
  EXPECT_FALSE(config.batch_size_set);
  EXPECT_EQ(per_rank_batch(config, 4), 24);
  EXPECT_EQ(error_of([&] { per_rank_batch(config, 3); }),
            "config: virtual-shards: 8 is not a multiple of the world size 3 (every rank owns the "
            "same number of virtual shards; run on a divisor of it, or give another "
            "virtual-shards)");
  // batch-size beside global-batch-size: fine when it agrees, one line when not.
  const Config both = parse({"--global-batch-size", "96", "--batch-size", "48"});
  EXPECT_TRUE(both.batch_size_set);
  EXPECT_EQ(per_rank_batch(both, 2), 48);
  EXPECT_EQ(error_of([&] { per_rank_batch(both, 4); }),
            "config: batch-size: 48 images per rank does not match global-batch-size 96 over 4 "
            "ranks (24 per rank); give global-batch-size alone");
  EXPECT_EQ(error_of([&] { VirtualShardLayout::make(7, config, 0, 1); }),
            "config: virtual-shards: 8 virtual shards need at least as many training rows, the "
            "data has 7");
  EXPECT_EQ(error_of([&] { VirtualShardLayout::make(80, config, 0, 1); }),
            "config: global-batch-size: 96 gives each of the 8 virtual shards 12 images per step, "
            "more than its 10 rows: use a smaller global batch or fewer virtual shards");
}

TEST(VirtualShards, CheckpointHoldsOnePositionAndNoiseStatePerVirtualShard) {
  testing::TempDir dir;
  torch::manual_seed(3);
  ConvDae model;
  torch::optim::Adam adam(model->parameters());
  CheckpointData data;
  data.step = 40;
  data.world_size = 2;
  data.virtual_shards = 6;
  for (int v = 0; v < 6; ++v) {
    data.cursors.push_back({v, 10 * v});
    data.noise_states.push_back(torch::full({16}, v, torch::kUInt8));
  }
  write_checkpoint_file(dir.file("v.h5"), *model, adam, data, "");
  const CheckpointData loaded = load_checkpoint(dir.file("v.h5"), *model, adam);
  EXPECT_EQ(loaded.virtual_shards, 6);
  EXPECT_EQ(loaded.world_size, 2);
  ASSERT_EQ(loaded.cursors.size(), 6u);
  for (int v = 0; v < 6; ++v) {
    EXPECT_EQ(loaded.cursors[v].epoch, v);
    EXPECT_EQ(loaded.cursors[v].position, 10 * v);
    EXPECT_TRUE(loaded.noise_states[v].equal(data.noise_states[v]));
  }
  // Per-rank mode's checkpoint is the file it always was: no virtual-shard dataset.
  data.virtual_shards = 0;
  data.cursors.resize(2);
  data.noise_states.resize(2);
  write_checkpoint_file(dir.file("r.h5"), *model, adam, data, "");
  EXPECT_FALSE(H5File::open_read_only(dir.file("r.h5")).has("/state/virtual_shards"));
  EXPECT_EQ(load_checkpoint(dir.file("r.h5"), *model, adam).virtual_shards, 0);
}

}  // namespace
}  // namespace dae
