// Sharding, batch order and noise: every row on exactly one rank, reproducible streams.
#include <gtest/gtest.h>

#include <set>

#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/data/noise.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::TempDir;

TEST(ShardRange, DisjointCoveringAndBalancedForWorldsOneToFive) {
  for (std::uint64_t total : {5ull, 7ull, 100ull, 9000ull}) {
    for (int world = 1; world <= 5; ++world) {
      std::uint64_t next = 0, smallest = total, largest = 0;
      for (int rank = 0; rank < world; ++rank) {
        const auto [first, count] = shard_range(total, rank, world);
        EXPECT_EQ(first, next) << "total " << total << " world " << world << " rank " << rank;
        next = first + count;
        smallest = std::min(smallest, count);
        largest = std::max(largest, count);
      }
      EXPECT_EQ(next, total);
      EXPECT_LE(largest - smallest, 1u);
    }
  }
}

TEST(Shard, EachRankReadsExactlyItsRowsForWorldsOneToFive) {
  TempDir dir;
  const std::uint32_t total = 2503;  // spans several HDF5 chunks of 1000 rows
  write_data_file(dir.file("data.h5"), testing::row_pattern_split(total),
                  testing::row_pattern_split(10), "pattern");
  for (int world = 1; world <= 5; ++world) {
    std::set<std::uint64_t> seen;
    for (int rank = 0; rank < world; ++rank) {
      const Shard shard = Shard::read_for_rank(dir.file("data.h5"), "train", rank, world);
      const auto [first, count] = shard_range(total, rank, world);
      ASSERT_EQ(shard.first_row, first);
      ASSERT_EQ(shard.rows(), static_cast<std::int64_t>(count));
      EXPECT_EQ(shard.total_rows, total);
      // Each local image holds its own global row's pattern: the hyperslab was this rank's.
      for (std::int64_t i = 0; i < shard.rows(); ++i) {
        const std::uint64_t row = first + static_cast<std::uint64_t>(i);
        EXPECT_EQ(shard.images[i].min().item<int>(), static_cast<int>(row % 251));
        EXPECT_EQ(shard.images[i].max().item<int>(), static_cast<int>(row % 251));
        EXPECT_EQ(shard.labels[i].item<int>(), static_cast<int>(row % 10));
        EXPECT_TRUE(seen.insert(row).second) << "row " << row << " on two ranks";
      }
    }
    EXPECT_EQ(seen.size(), total) << "world " << world;
  }
}

TEST(Shard, FewerRowsThanRanksIsAnError) {
  TempDir dir;
  write_data_file(dir.file("data.h5"), testing::row_pattern_split(3),
                  testing::row_pattern_split(3), "tiny");
  EXPECT_THROW(Shard::read_for_rank(dir.file("data.h5"), "train", 0, 4), Error);
  try {
    Shard::read_for_rank(dir.file("data.h5"), "train", 0, 4);
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("3 rows, fewer than the 4 ranks"), std::string::npos);
  }
}

TEST(Shard, MissingOrForeignFilesAreNamed) {
  TempDir dir;
  EXPECT_THROW(count_rows(dir.file("absent.h5"), "train"), Error);
  testing::write_bytes(dir.path() / "text.h5", {'h', 'e', 'l', 'l', 'o'});
  try {
    count_rows(dir.file("text.h5"), "train");
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("text.h5: not an HDF5 file"), std::string::npos);
  }
}

TEST(BatchOrder, EachEpochVisitsEveryRowOnce) {
  BatchOrder order(10, 7, 0);
  BatchCursor cursor;
  const torch::Tensor first = order.next(10, cursor);
  const torch::Tensor second = order.next(10, cursor);
  EXPECT_TRUE(std::get<0>(first.sort()).equal(torch::arange(10)));
  EXPECT_TRUE(std::get<0>(second.sort()).equal(torch::arange(10)));
  EXPECT_FALSE(first.equal(second)) << "epochs should be shuffled differently";
  EXPECT_EQ(cursor.epoch, 1);
  EXPECT_EQ(cursor.position, 10);
}

TEST(BatchOrder, ReproducibleForSeedAndDifferentAcrossRanks) {
  BatchCursor a, b, c;
  BatchOrder rank0(1000, 42, 0), rank0_again(1000, 42, 0), rank1(1000, 42, 1);
  const torch::Tensor x = rank0.next(64, a);
  EXPECT_TRUE(x.equal(rank0_again.next(64, b)));
  EXPECT_FALSE(x.equal(rank1.next(64, c)));
  // The stream is a function of the cursor alone: a fresh order resumes it exactly.
  BatchOrder resumed(1000, 42, 0);
  BatchCursor copy = a;
  EXPECT_TRUE(rank0.next(64, a).equal(resumed.next(64, copy)));
}

TEST(NoiseSource, ReproducibleForSeedDifferentAcrossRanksAndRestorable) {
  const torch::Tensor clean = torch::zeros({4, 1, 28, 28});
  const NoiseType gaussian = NoiseType::kGaussian;
  NoiseSource rank0(5, 0, 1, gaussian), rank0_again(5, 0, 1, gaussian), rank1(5, 1, 1, gaussian);
  const torch::Tensor x = rank0.corrupt(clean, 0.8);
  EXPECT_TRUE(x.equal(rank0_again.corrupt(clean, 0.8)));
  EXPECT_FALSE(x.equal(rank1.corrupt(clean, 0.8)));
  EXPECT_NEAR(x.std().item<double>(), 0.8, 0.05);
  EXPECT_NEAR(x.mean().item<double>(), 0.0, 0.05);

  const torch::Tensor saved = rank0.state();
  const torch::Tensor next = rank0.corrupt(clean, 0.3);
  NoiseSource restored(99, 3, 1, gaussian);
  restored.set_state(saved);
  EXPECT_TRUE(next.equal(restored.corrupt(clean, 0.3)));
}

}  // namespace
}  // namespace dae
