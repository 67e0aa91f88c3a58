// World-size invariant mode as a user runs it: dae_dist stopped at step 120 on 2 ranks and
// resumed on 4 ends with the bits of the uninterrupted 1-rank run (parameters, Adam moments,
// the evaluation's numbers); a checkpoint of the other mode or of another virtual-shard count,
// and every bad combination of the options, is one line and a non-zero exit of the whole job
// within seconds.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "dae/data/dataset.hpp"
#include "dae/io/h5.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::run_command;

class WorldSizeCli : public ::testing::Test {
 protected:
  void SetUp() override { testing::write_small_data_file(dir.file("data.h5")); }
  // One thread per rank: the kernels then add in the same order at every world size.
  std::string job(int ranks, const std::string& run, const std::string& args) const {
    return testing::mpirun(ranks) + " " + DAE_DIST_BIN + " --data " + dir.file("data.h5") +
           " --run-dir " + dir.file(run) + " --threads 1 --eval-noise 0 --log-every 50 " +
           "--checkpoint-every 0 " + args + " 2>&1";
  }
  std::string test_mse_line(const std::string& run) const {
    std::ifstream in(dir.file(run + "/summary.json"));
    for (std::string line; std::getline(in, line);)
      if (line.find("\"test_mse\"") != std::string::npos) return line;
    return "";
  }
  testing::TempDir dir;
};

constexpr const char* kInvariant = "--global-batch-size 48 --virtual-shards 12 ";

TEST_F(WorldSizeCli, StoppedOnTwoRanksResumedOnFourEndsAsOneRank) {
  const auto one = run_command(job(1, "one", std::string(kInvariant) + "--steps 200"));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_NE(one.output.find("rank 0/1: virtual shards 0-11 of 12, 4 images each per step"),
            std::string::npos)
      << one.output;
  const auto first = run_command(job(2, "split", std::string(kInvariant) + "--steps 120"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const auto rest =
      run_command(job(4, "split", std::string(kInvariant) + "--steps 200 --resume auto"));
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_NE(rest.output.find("resumed from"), std::string::npos) << rest.output;
  // Not the per-rank mode's warning about re-derived streams, nor a batch-size "change".
  EXPECT_EQ(rest.output.find("re-derived"), std::string::npos) << rest.output;
  EXPECT_EQ(rest.output.find("batch-size changed"), std::string::npos) << rest.output;
  EXPECT_EQ(testing::checkpoint_values(dir.file("split/checkpoints/ckpt_00000200.h5")),
            testing::checkpoint_values(dir.file("one/checkpoints/ckpt_00000200.h5")))
      << "2 ranks then 4 differ from 1 rank";
  EXPECT_EQ(test_mse_line("split"), test_mse_line("one"));
  EXPECT_FALSE(test_mse_line("one").empty());

  // That checkpoint cannot continue in per-rank mode.
  const auto per_rank = run_command(job(2, "split", "--steps 300 --resume auto"));
  EXPECT_NE(per_rank.exit_code, 0);
  EXPECT_EQ(testing::count_of(per_rank.output,
                              "dae_dist: global-batch-size: the checkpoint was written in "
                              "world-size invariant mode (virtual-shards = 12)"),
            1u)
      << per_rank.output;
}

TEST_F(WorldSizeCli, CheckpointOfTheOtherModeOrAnotherVirtualShardCountIsRefused) {
  const auto per_rank = run_command(job(2, "per_rank", "--steps 20"));
  ASSERT_EQ(per_rank.exit_code, 0) << per_rank.output;
  const auto as_invariant =
      run_command(job(2, "per_rank", std::string(kInvariant) + "--steps 40 --resume auto"));
  EXPECT_NE(as_invariant.exit_code, 0);
  EXPECT_EQ(testing::count_of(as_invariant.output,
                              "dae_dist: global-batch-size: the checkpoint was written in "
                              "per-rank mode (2 ranks)"),
            1u)
      << as_invariant.output;

  const auto invariant = run_command(job(2, "invariant", std::string(kInvariant) + "--steps 20"));
  ASSERT_EQ(invariant.exit_code, 0) << invariant.output;
  const auto other_v = run_command(
      job(2, "invariant", "--global-batch-size 48 --virtual-shards 8 --steps 40 --resume auto"));
  EXPECT_NE(other_v.exit_code, 0);
  EXPECT_EQ(testing::count_of(other_v.output,
                              "dae_dist: virtual-shards: the checkpoint has 12 virtual shards, "
                              "this run 8"),
            1u)
      << other_v.output;
}

TEST_F(WorldSizeCli, BadCombinationsAreOneLineAndEndTheJob) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {testing::mpirun(3), "--global-batch-size 48"},  // V = 8 over 3 ranks
      {testing::mpirun(2), "--global-batch-size 100"},
      {testing::mpirun(4), "--global-batch-size 96 --batch-size 48"},
      {testing::mpirun(2), "--virtual-shards 4"},
      {testing::mpirun(2), "--global-batch-size 4000 --virtual-shards 8"},
  };
  const std::vector<std::string> lines = {
      "dae_dist: config: virtual-shards: 8 is not a multiple of the world size 3",
      "dae_dist: config: global-batch-size: 100 is not a multiple of virtual-shards (8)",
      "dae_dist: config: batch-size: 48 images per rank does not match global-batch-size 96 "
      "over 4 ranks (24 per rank)",
      "dae_dist: config: virtual-shards: needs global-batch-size",
      "dae_dist: config: global-batch-size: 4000 gives each of the 8 virtual shards 500 images "
      "per step, more than its 50 rows",
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto result =
        run_command(cases[i].first + " " + DAE_DIST_BIN + " --data " + dir.file("data.h5") +
                    " --run-dir " + dir.file("bad") + " --steps 10 " + cases[i].second + " 2>&1");
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_EQ(testing::count_of(result.output, lines[i]), 1u) << result.output;
    EXPECT_LT(result.seconds, 30) << result.output;
  }
}

}  // namespace
}  // namespace dae
