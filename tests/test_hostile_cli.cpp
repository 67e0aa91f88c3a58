// The job as a hostile or unlucky user meets it, through mpirun (issue "faults and bad input"):
// a full disk during the evaluation outputs, an older checkpoint resumed, two jobs on one run
// dir, a diverging run, a stopped rank, a finished run resubmitted, bad data found before
// training, changed options on resume, and dae_prepare's inputs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "dae/train/checkpoint.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/files.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/image_io.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

namespace fs = std::filesystem;
using testing::count_of;
using testing::run_command;
using testing::TempDir;

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    write_data_file(data, testing::synthetic_split(200, 3), testing::synthetic_split(20, 4),
                    "synthetic");
  }
  std::string job(int ranks, const std::string& run_dir, const std::string& args,
                  const std::string& data_file = "") const {
    return testing::mpirun(ranks) + " " + DAE_DIST_BIN + " --data " +
           (data_file.empty() ? data : data_file) + " --run-dir " + run_dir +
           " --batch-size 10 --eval-noise 0 --lr-warmup 0 " + args;
  }
  // Every file under `root` (relative names), sorted.
  static std::vector<std::string> files_under(const fs::path& root) {
    std::vector<std::string> names;
    for (const auto& entry : fs::recursive_directory_iterator(root))
      if (entry.is_regular_file()) names.push_back(fs::relative(entry.path(), root).string());
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  TempDir dir;
  std::string data = dir.file("data.h5");
};

TEST_F(Hostile, AFullDiskDuringTheEvaluationEndsWithOneLineAndNothingHalfWritten) {
  const fs::path disk = dir.path() / "disk";
  fs::create_directories(disk);
  // The final checkpoint (~430 kB) fits; the evaluation's grids, plot and tables (~100 kB) do not.
  if (run_command("mount -t tmpfs -o size=470k dae_test_tmpfs " + disk.string()).exit_code != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  const std::string run_dir = (disk / "run").string();
  const auto result = run_command(job(1, run_dir, "--steps 10 --checkpoint-every 0"));
  const auto names = files_under(run_dir);
  std::vector<std::string> undecodable;
  for (const auto& name : names)
    if (name.size() > 4 && name.substr(name.size() - 4) == ".png") try {
        read_png(run_dir + "/" + name);
      } catch (const std::exception&) {
        undecodable.push_back(name);
      }
  const std::string checkpoint_error =
      testing::checkpoint_load_error(run_dir + "/checkpoints/ckpt_00000010.h5");
  run_command("umount " + disk.string());

  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_LT(result.seconds, 60) << result.output;
  EXPECT_EQ(count_of(result.output, "No space left on device"), 1u) << result.output;
  EXPECT_NE(result.output.find("/eval/"), std::string::npos) << result.output;
  for (const char* crash : {"exited on signal", "Aborted", "Segmentation", "Write Error"})
    EXPECT_EQ(result.output.find(crash), std::string::npos) << crash << "\n" << result.output;
  for (const auto& name : names) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  EXPECT_TRUE(undecodable.empty()) << undecodable.front();
  EXPECT_EQ(std::count(names.begin(), names.end(), "summary.json"), 0);
  EXPECT_EQ(checkpoint_error, "") << "the training is lost: " << checkpoint_error;
}

TEST_F(Hostile, ResumingAnOlderCheckpointSetsTheNewerOnesAsideInsteadOfDeletingThem) {
  const std::string run_dir = dir.file("run");
  ASSERT_EQ(run_command(job(1, run_dir, "--steps 30 --checkpoint-every 10")).exit_code, 0);
  const auto resumed = run_command(job(
      1, run_dir, "--steps 15 --checkpoint-every 5 --resume " + run_dir +
                      "/checkpoints/ckpt_00000010.h5"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("moved to " + run_dir + "/checkpoints/abandoned-10 (nothing "
                                "deleted)"),
            std::string::npos)
      << resumed.output;
  EXPECT_EQ(files_under(run_dir + "/checkpoints"),
            (std::vector<std::string>{"abandoned-10/ckpt_00000020.h5",
                                      "abandoned-10/ckpt_00000030.h5", "ckpt_00000010.h5",
                                      "ckpt_00000015.h5"}));
  EXPECT_EQ(testing::checkpoint_load_error(run_dir + "/checkpoints/abandoned-10/ckpt_00000030.h5"),
            "");
}

TEST_F(Hostile, ASecondJobOnALockedRunDirIsRefusedBeforeTouchingIt) {
  const std::string run_dir = dir.file("run");
  fs::create_directories(run_dir);
  {
    const RunDirLock held(run_dir);  // what a running job holds
    const auto second = run_command(job(2, run_dir, "--steps 10"));
    EXPECT_NE(second.exit_code, 0) << second.output;
    EXPECT_LT(second.seconds, 30) << second.output;
    EXPECT_EQ(count_of(second.output, "in use by another dae_dist job (host "), 1u)
        << second.output;
    EXPECT_NE(second.output.find("pid " + std::to_string(::getpid())), std::string::npos)
        << second.output;
    EXPECT_EQ(files_under(run_dir), std::vector<std::string>{".lock"}) << second.output;
  }
  // Released (as the kernel releases a dead job's lock): the next job runs.
  EXPECT_EQ(run_command(job(2, run_dir, "--steps 10")).exit_code, 0);
}

TEST_F(Hostile, ADivergingRunStopsWithOneLineAndWritesNoNonFiniteCheckpoint) {
  const std::string run_dir = dir.file("run");
  const auto result = run_command(job(2, run_dir, "--lr 1e30 --steps 50 --checkpoint-every 1"));
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_EQ(count_of(result.output, "training diverged at step "), 1u) << result.output;
  EXPECT_EQ(result.output.find("PSNR"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(run_dir + "/summary.json"));
  for (const auto& path : list_checkpoints(run_dir))
    EXPECT_EQ(testing::checkpoint_load_error(path), "") << path;
}

TEST_F(Hostile, AStoppedRankEndsTheJobAfterTheCollectiveTimeout) {
  const std::string run_dir = dir.file("stuck");
  const std::string ranks = "'^" + std::string(DAE_DIST_BIN) + " .*" + run_dir + "'";
  const auto stuck = testing::run_and_act(
      job(2, run_dir, "--steps 1000000 --checkpoint-every 0 --collective-timeout 3"),
      "grep -q '^step' " + dir.file("stuck.log"), "pkill -STOP -n -f " + ranks,
      dir.file("stuck.log"));
  run_command("pkill -KILL -f " + ranks);  // whatever is left, stopped or not
  EXPECT_EQ(stuck.output.find("EXIT=0"), std::string::npos) << stuck.output;
  const long ms = testing::act_to_exit_ms(stuck.output);
  EXPECT_GE(ms, 0) << stuck.output;
  EXPECT_LT(ms, 30000) << "the job outlived the timeout by far: " << ms << " ms\n" << stuck.output;
  EXPECT_NE(stuck.output.find("no progress from the other ranks for 3 s"), std::string::npos)
      << stuck.output;
}

TEST_F(Hostile, AFinishedRunResubmittedWithResumeAutoKeepsItsSummary) {
  const std::string run_dir = dir.file("run");
  ASSERT_EQ(run_command(job(1, run_dir, "--steps 20")).exit_code, 0);
  const std::string summary = read_text(run_dir + "/summary.json");
  const auto again = run_command(job(1, run_dir, "--steps 20 --resume auto"));
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("this run is already finished; nothing to do"), std::string::npos)
      << again.output;
  EXPECT_EQ(again.output.find("done:"), std::string::npos) << again.output;
  EXPECT_EQ(read_text(run_dir + "/summary.json"), summary);
}

TEST_F(Hostile, ChangedOptionsOnResumeAreNamedWithTheirOldAndNewValues) {
  const std::string run_dir = dir.file("run");
  ASSERT_EQ(run_command(job(1, run_dir, "--steps 10 --lr 0.01 --noise 0.3")).exit_code, 0);
  const auto resumed = run_command(job(1, run_dir, "--steps 20 --lr 0.005 --noise 0.5 --resume auto"));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(count_of(resumed.output, "warning: resume: lr changed from 0.01 to 0.005"), 1u)
      << resumed.output;
  EXPECT_EQ(count_of(resumed.output, "warning: resume: noise changed from 0.3 to 0.5"), 1u)
      << resumed.output;
  EXPECT_EQ(resumed.output.find("seed changed"), std::string::npos) << resumed.output;
}

TEST_F(Hostile, BadDataAndABadRunDirAreFoundBeforeTrainingNotAfter) {
  const std::string floats = dir.file("floats.h5");
  fs::copy_file(data, floats);
  {
    H5File file = H5File::open_read_write(floats);
    ASSERT_GE(H5Ldelete(file.id(), "/test/images", H5P_DEFAULT), 0);
    const std::vector<float> pixels(20 * 28 * 28, 0.5f);
    file.write<float>("/test/images", {20, 28, 28}, pixels.data());
  }
  const auto float_run = run_command(job(2, dir.file("run1"), "--steps 1000", floats));
  EXPECT_NE(float_run.exit_code, 0);
  EXPECT_EQ(count_of(float_run.output, "/test/images: stored as float of 4 bytes"), 1u)
      << float_run.output;
  EXPECT_EQ(float_run.output.find("step "), std::string::npos) << float_run.output;

  const auto big_batch = run_command(testing::mpirun(2) + " " + DAE_DIST_BIN + " --data " + data +
                                     " --run-dir " + dir.file("run3") +
                                     " --steps 10 --batch-size 150");
  EXPECT_NE(big_batch.exit_code, 0);
  EXPECT_EQ(count_of(big_batch.output, "batch-size 150 is larger than rank 0's shard of 100 "
                                       "training rows"),
            1u)
      << big_batch.output;

  const std::string run_dir = dir.file("run2");
  fs::create_directories(run_dir);
  std::ofstream(run_dir + "/checkpoints") << "not a directory";
  const auto file_run = run_command(job(2, run_dir, "--steps 1000"));
  EXPECT_NE(file_run.exit_code, 0);
  EXPECT_EQ(count_of(file_run.output, "/checkpoints exists and is not a directory"), 1u)
      << file_run.output;
  EXPECT_EQ(file_run.output.find("step "), std::string::npos) << file_run.output;
}

TEST_F(Hostile, DaePrepareRefusesToOverwriteItsInputAndAFifoInput) {
  const fs::path idx = dir.path() / "idx";
  testing::write_idx_dir(idx, testing::synthetic_split(20, 1), testing::synthetic_split(5, 2),
                         /*gzip=*/false);
  const std::string input = (idx / "t10k-labels-idx1-ubyte").string();
  const std::string before = read_text(input);
  const auto over = run_command(std::string(DAE_PREPARE_BIN) + " --idx-dir " + idx.string() +
                                " --out " + input);
  EXPECT_NE(over.exit_code, 0);
  EXPECT_NE(over.output.find("--out " + input + ": is one of the inputs"), std::string::npos)
      << over.output;
  EXPECT_EQ(read_text(input), before);

  fs::remove(idx / "train-images-idx3-ubyte");
  ASSERT_EQ(::mkfifo((idx / "train-images-idx3-ubyte").c_str(), 0600), 0);
  const auto fifo = run_command("timeout 30 " + std::string(DAE_PREPARE_BIN) + " --idx-dir " +
                                idx.string() + " --out " + dir.file("out.h5"));
  EXPECT_NE(fifo.exit_code, 0);
  EXPECT_NE(fifo.exit_code, 124) << "dae_prepare blocked on the FIFO";
  EXPECT_NE(fifo.output.find("train-images-idx3-ubyte: not a regular file"), std::string::npos)
      << fifo.output;
  EXPECT_FALSE(fs::exists(dir.file("out.h5")));
}

}  // namespace
}  // namespace dae
