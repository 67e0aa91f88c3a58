// Faults a running job meets on a real machine, driven through mpirun as a user runs the job:
// the disk filling up while a checkpoint is written, and the data file being unreadable for one
// rank or changed under the running job. (A rank killed with SIGKILL: test_resume_cli.cpp.)
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "dae/train/checkpoint.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"
#include "dae/model/model.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::TempDir;

using testing::count_of;

// In the DAE_SANITIZE build every rank is checked too: no report may appear on the way out.
void expect_no_sanitizer_report(const std::string& output) {
  EXPECT_EQ(output.find("Sanitizer:"), std::string::npos) << output;
  EXPECT_EQ(output.find("runtime error:"), std::string::npos) << output;
}

std::string job(int ranks, const std::string& data, const std::string& run_dir,
                const std::string& args) {
  return testing::mpirun(ranks) + " " + DAE_DIST_BIN + " --data " + data + " --run-dir " +
         run_dir + " --batch-size 10 --eval-noise 0 " + args;
}

// A tmpfs of `size` mounted at `path` for the test's lifetime (root only; `mounted()` says
// whether it worked, `why_not()` what mount said).
class SmallTmpfs {
 public:
  SmallTmpfs(const fs::path& path, const std::string& size) : path_(path) {
    fs::create_directories(path_);
    const auto result =
        run_command("mount -t tmpfs -o size=" + size + ",mode=0755 dae_test_tmpfs " + path_.string());
    mounted_ = result.exit_code == 0;
    why_not_ = result.output;
  }
  ~SmallTmpfs() {
    if (mounted_) run_command("umount " + path_.string());
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_not_; }

 private:
  fs::path path_;
  bool mounted_ = false;
  std::string why_not_;
};

// Loads a checkpoint into a fresh model the way --resume does; returns its step.
std::int64_t load_step(const std::string& path) {
  ConvDae model;
  torch::optim::Adam optimizer(model->parameters());
  return load_checkpoint(path, *model, optimizer).step;
}

TEST(DiskFull, ACheckpointThatDoesNotFitEndsTheJobWithOneLineAndKeepsTheOlderOnes) {
  TempDir dir;
  write_data_file(dir.file("data.h5"), testing::synthetic_split(200, 3),
                  testing::synthetic_split(20, 4), "synthetic");
  // A 2-rank checkpoint of the seed model is ~430 kB: two fit in 1000 kB, the third cannot.
  SmallTmpfs disk(dir.path() / "disk", "1000k");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << disk.why_not();
  const std::string run_dir = dir.file("disk/run");

  const auto result = run_command(
      job(2, dir.file("data.h5"), run_dir, "--steps 10 --checkpoint-every 1 --keep-checkpoints 9"));
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_LT(result.seconds, 60) << result.output;
  // One line, from rank 0 only, naming the checkpoint and the cause.
  EXPECT_EQ(count_of(result.output, "checkpoint not written"), 1u) << result.output;
  EXPECT_NE(result.output.find("dae_dist: " + run_dir +
                               "/checkpoints/ckpt_00000003.h5: checkpoint not written: "),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("No space left on device"), std::string::npos) << result.output;
  // No rank may die of a signal on the way out (HDF5 1.10 did, after a failed write).
  EXPECT_EQ(result.output.find("exited on signal"), std::string::npos) << result.output;
  expect_no_sanitizer_report(result.output);

  // The older checkpoints are intact (their Fletcher32 checksums verify on load), and neither
  // the temporary file nor a partial ckpt_00000003.h5 is left.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(run_dir + "/checkpoints"))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ckpt_00000001.h5", "ckpt_00000002.h5"}))
      << result.output;
  EXPECT_EQ(load_step(run_dir + "/checkpoints/ckpt_00000001.h5"), 1);
  EXPECT_EQ(load_step(run_dir + "/checkpoints/ckpt_00000002.h5"), 2);

  // And the run continues from the newest intact one once there is room again (keeping one
  // checkpoint, so that its final one and the evaluation outputs fit the small disk too).
  fs::remove(run_dir + "/checkpoints/ckpt_00000001.h5");
  // Leak checking is off for this second job only: in the sanitizer build LeakSanitizer's own
  // tracer intermittently crashed (signal 11) at this job's exit after a clean run, failing it
  // for a reason that is not ours; the first job above is still leak-checked.
  const auto resumed = run_command(
      "ASAN_OPTIONS=fast_unwind_on_malloc=0:detect_leaks=0 " +
      job(2, dir.file("data.h5"), run_dir,
          "--steps 4 --checkpoint-every 0 --keep-checkpoints 1 --resume auto"));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("ckpt_00000002.h5 at step 2"), std::string::npos)
      << resumed.output;
}

// Overwrites the stored bytes of the chunk of `dataset` that holds row `row`, keeping the
// file's size and every other byte: the rows of that chunk become unreadable, no others.
void corrupt_chunk(const std::string& path, const std::string& dataset, hsize_t row) {
  haddr_t address = 0;
  hsize_t size = 0;
  {
    const H5File file = H5File::open_read_only(path);
    const H5Handle data(H5Dopen2(file.id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
    const hsize_t offset[3] = {row, 0, 0};
    unsigned filter_mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(data.get(), offset, &filter_mask, &address, &size), 0);
    ASSERT_GT(size, 16u);
  }
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(address));
  const std::string garbage(size, '\x5a');
  file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  ASSERT_TRUE(file.good());
}

TEST(DataFile, RowsUnreadableForOneRankOnlyEndTheJobWithThatRanksError) {
  TempDir dir;
  // 2000 rows in chunks of 1000: rank 0 of 2 reads chunk 0 only, rank 1 chunk 1 only.
  write_data_file(dir.file("data.h5"), testing::row_pattern_split(2000),
                  testing::row_pattern_split(20), "rows");
  corrupt_chunk(dir.file("data.h5"), "/train/images", 1000);
  EXPECT_NO_THROW(Shard::read(dir.file("data.h5"), "train", 0, 1000)) << "rank 0's rows broke too";

  const auto result = run_command(job(2, dir.file("data.h5"), dir.file("run"), "--steps 20"));
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_LT(result.seconds, 30) << result.output;
  EXPECT_NE(result.output.find("dae_dist: " + dir.file("data.h5") +
                               ": /train/images: read of rows [1000, 2000) failed"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("(rank 1 of 2's shard)"), std::string::npos) << result.output;
  EXPECT_EQ(count_of(result.output, "read of rows"), 1u) << result.output;
  expect_no_sanitizer_report(result.output);
  EXPECT_EQ(result.output.find("\nstep "), std::string::npos) << result.output;
}

TEST(DataFile, ADataFileTruncatedUnderARunningJobEndsItWithAClearError) {
  TempDir dir;
  write_data_file(dir.file("data.h5"), testing::synthetic_split(400, 3),
                  testing::synthetic_split(40, 4), "synthetic");
  const std::string log = dir.file("job.log");
  const std::string data = dir.file("data.h5");
  // Training holds its shard in memory; the evaluation at the end opens the file again. The
  // file is cut in half while the job trains (as a copy or a rewrite in place would leave it).
  const auto result = run_command(
      "( " + job(2, data, dir.file("run"), "--steps 400 --log-every 20") + " > " + log +
      " 2>&1 & job=$!; for i in $(seq 600); do grep -q '^step' " + log +
      " && break; sleep 0.1; done; truncate -s $(( $(stat -c %s " + data + ") / 2 )) " + data +
      "; cut=$(date +%s%N); wait $job; rc=$?; echo CUT_TO_EXIT_MS=$(( ($(date +%s%N) - cut) / "
      "1000000 )); echo EXIT=$rc; cat " + log + " )");
  EXPECT_NE(result.output.find("\nstep "), std::string::npos) << result.output;  // was training
  EXPECT_EQ(result.output.find("EXIT=0"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("done:"), std::string::npos) << "finished before the cut: "
                                                              << result.output;
  EXPECT_NE(result.output.find(data + ": cannot open as HDF5 (corrupt or truncated)"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("dae_dist: rank "), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(dir.file("run/summary.json")));
  expect_no_sanitizer_report(result.output);
  EXPECT_EQ(run_command("pgrep -f '^" + std::string(DAE_DIST_BIN) + " .*" + dir.file("run") + "'")
                .exit_code,
            1)
      << "a rank is still running";
}

}  // namespace
}  // namespace dae
