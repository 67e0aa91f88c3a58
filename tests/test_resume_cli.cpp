// Preemption and resume as a cluster user meets them: SIGUSR1 -> checkpoint + exit 75 -> resume
// to the same parameters; a rank killed with SIGKILL; truncated checkpoints; a new world size;
// the Slurm and resume-loop scripts driven with fake srun/mpirun/scontrol.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "dae/train/checkpoint.hpp"
#include "dae/data/dataset.hpp"
#include "dae/io/h5.hpp"
#include "dae/core/signals.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::run_command;
using testing::TempDir;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override { testing::write_small_data_file(dir.file("data.h5")); }
  std::string job(int ranks, const std::string& run, const std::string& args) const {
    return testing::mpirun(ranks) + " " + DAE_DIST_BIN + " --data " + dir.file("data.h5") +
           " --run-dir " + dir.file(run) + " --batch-size 10 --eval-noise 0 " + args;
  }
  testing::CommandResult run_and_act(const std::string& command, const std::string& ready,
                                     const std::string& act) const {
    return testing::run_and_act(command, ready, act, dir.file("background.log"));
  }
  static long act_to_exit_ms(const std::string& output) { return testing::act_to_exit_ms(output); }
  TempDir dir;
};

TEST_F(Resume, SigusrOneCheckpointsExitsSeventyFiveAndResumesToTheSameParameters) {
  const std::string args = "--steps 1500 --checkpoint-every 0 --log-every 20";
  const auto uninterrupted = run_command(job(2, "straight", args));
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.output;

  const auto stopped = run_and_act(job(2, "stopped", args),
                                   "grep -q '^step' " + dir.file("background.log"),
                                   "kill -USR1 $job");
  ASSERT_NE(stopped.output.find("EXIT=75"), std::string::npos) << stopped.output;
  const auto saved = list_checkpoints(dir.file("stopped"));
  ASSERT_EQ(saved.size(), 1u) << stopped.output;
  EXPECT_EQ(saved[0].find("ckpt_00001500"), std::string::npos) << "stopped too late to test";
  // The record the scripts trust instead of the log: this stop's step, checkpoint and exit code.
  const std::string record_path = dir.file(std::string("stopped/") + kStoppedFile);
  const std::string record = read_text(record_path);
  std::smatch step;
  ASSERT_TRUE(std::regex_search(record, step, std::regex("\n  \"step\": ([0-9]+),\n"))) << record;
  char name[32];
  std::snprintf(name, sizeof name, "ckpt_%08ld.h5", std::stol(step[1]));
  EXPECT_EQ(std::filesystem::path(saved[0]).filename().string(), name) << record;
  EXPECT_NE(record.find("\n  \"checkpoint\": \"" + std::filesystem::absolute(saved[0]).string() +
                        "\",\n"),
            std::string::npos)
      << record;
  EXPECT_NE(record.find("\n  \"exit_code\": " + std::to_string(kExitPreempted) + "\n}\n"),
            std::string::npos)
      << record;

  const auto resumed = run_command(job(2, "stopped", args + " --resume auto"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from " + saved[0]), std::string::npos) << resumed.output;
  EXPECT_FALSE(std::filesystem::exists(record_path)) << "a finished run kept the earlier stop's";
  EXPECT_EQ(testing::checkpoint_values(dir.file("stopped/checkpoints/ckpt_00001500.h5")),
            testing::checkpoint_values(dir.file("straight/checkpoints/ckpt_00001500.h5")))
      << "resumed run differs from the uninterrupted one";
}

TEST_F(Resume, SigtermToMpirunItselfCountsAsPreemptedAndResumeLoopRestarts) {
  // mpirun signalled itself exits 1 after its ranks checkpointed and exited 75; resume_loop.sh
  // must see a preemption and start the job again, which then finishes.
  const std::string loop = "DAE_RANKS=2 DAE_BUILD=" +
                           std::filesystem::path(DAE_DIST_BIN).parent_path().string() + " bash " +
                           DAE_SOURCE_DIR + "/launch/resume_loop.sh --data " + dir.file("data.h5") +
                           " --run-dir " + dir.file("loop") +
                           " --batch-size 10 --eval-noise 0 --steps 1500 --log-every 20";
  // Ready once rank 0 holds the run-dir lock: every rank has its stop handlers by then (they are
  // installed before the first collective), and the log, which mpirun forwards in bursts, may
  // still show nothing while the whole 1-second run goes by. The ranks are then held (SIGSTOP)
  // until the signal has reached mpirun, so the stop lands before training ends; mpirun's own
  // teardown continues them (and the last pkill does, should it not).
  const std::string ranks = "'^" + std::string(DAE_DIST_BIN) + " .*" + dir.file("loop") + "'";
  const auto result = run_and_act(loop, "test -e " + dir.file("loop/.lock"),
                                  "pkill -STOP -f " + ranks +
                                      "; kill -TERM $(pgrep -P $job -x mpirun); sleep 1; pkill "
                                      "-CONT -f " + ranks);
  EXPECT_NE(result.output.find("EXIT=0"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("the launcher exited with 1, but the ranks stopped at a checkpoint"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("resume_loop: stopped with a checkpoint (exit " +
                               std::to_string(kExitPreempted) + "); restart 1/"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("resumed from " + dir.file("loop/checkpoints/ckpt_")),
            std::string::npos)
      << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("loop/summary.json"))) << result.output;
}

TEST_F(Resume, ARankKilledWithSigkillEndsTheJobAndResumeContinuesFromTheLastCheckpoint) {
  const std::string ckpt_dir = dir.file("killed/checkpoints");
  const std::string ranks_of_job = "'^" + std::string(DAE_DIST_BIN) + " .*" + dir.file("killed") + "'";
  // -n: only the newest matching process, i.e. exactly one of the two ranks; the other must not
  // be left waiting in its next all-reduce.
  const auto killed = run_and_act(
      job(2, "killed", "--steps 1000000 --checkpoint-every 50 --keep-checkpoints 2"),
      "ls " + ckpt_dir + "/ckpt_*.h5 >/dev/null 2>&1",
      "echo RANKS_BEFORE_KILL=$(pgrep -c -f " + ranks_of_job + "); pkill -KILL -n -f " +
          ranks_of_job);
  EXPECT_NE(killed.output.find("RANKS_BEFORE_KILL=2"), std::string::npos) << killed.output;
  EXPECT_EQ(killed.output.find("EXIT=0"), std::string::npos) << killed.output;
  const long ms = act_to_exit_ms(killed.output);
  EXPECT_GE(ms, 0) << killed.output;
  EXPECT_LT(ms, 30000) << "the job outlived its killed rank by " << ms << " ms\n" << killed.output;
  EXPECT_NE(run_command("pgrep -f " + ranks_of_job).exit_code, 0) << "a rank is still running";
  const auto saved = list_checkpoints(dir.file("killed"));
  ASSERT_FALSE(saved.empty()) << killed.output;
  // No temporary file survives as a checkpoint, and the newest complete one resumes.
  const std::string step_text = saved[0].substr(saved[0].size() - 11, 8);
  const long step = std::stol(step_text);
  const auto resumed = run_command(job(2, "killed", "--resume auto --steps " +
                                                        std::to_string(step + 20)));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("at step " + std::to_string(step)), std::string::npos)
      << resumed.output;
}

TEST_F(Resume, TruncatedNewestCheckpointIsSkippedByAutoAndRefusedByPath) {
  const auto first = run_command(job(2, "trunc", "--steps 40 --checkpoint-every 20"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::string newest = dir.file("trunc/checkpoints/ckpt_00000040.h5");
  std::filesystem::resize_file(newest, std::filesystem::file_size(newest) / 2);

  const auto automatic = run_command(job(2, "trunc", "--steps 50 --resume auto"));
  ASSERT_EQ(automatic.exit_code, 0) << automatic.output;
  EXPECT_NE(automatic.output.find("warning: skipping checkpoint " + newest), std::string::npos)
      << automatic.output;
  EXPECT_NE(automatic.output.find("ckpt_00000020.h5 at step 20"), std::string::npos)
      << automatic.output;

  // Resuming step 20 set the newer (truncated) file aside rather than deleting it.
  const std::string aside = dir.file("trunc/checkpoints/abandoned-20/ckpt_00000040.h5");
  ASSERT_TRUE(std::filesystem::exists(aside)) << automatic.output;
  const auto explicit_path = run_command(job(2, "trunc", "--steps 50 --resume " + aside));
  EXPECT_NE(explicit_path.exit_code, 0);
  EXPECT_NE(explicit_path.output.find("dae_dist: --resume: " + aside), std::string::npos)
      << explicit_path.output;
}

TEST_F(Resume, TwoRanksCheckpointResumesOnFourWithAWarning) {
  const auto two = run_command(job(2, "grow", "--steps 20"));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto four = run_command(job(4, "grow", "--steps 40 --resume auto"));
  ASSERT_EQ(four.exit_code, 0) << four.output;
  EXPECT_NE(four.output.find("at step 20"), std::string::npos) << four.output;
  EXPECT_NE(four.output.find("written by 2 ranks (this job has 4)"), std::string::npos)
      << four.output;
  EXPECT_NE(four.output.find("step     40/40"), std::string::npos) << four.output;
}

// Fake srun/mpirun/scontrol that record their arguments; the launcher exits with the next code
// of `launcher_rcs`. `launcher_body` (shell) runs in the launcher before it exits.
void write_fakes(const std::filesystem::path& bin, const std::string& launcher_rcs,
                 const std::string& launcher_body = "") {
  std::filesystem::create_directories(bin);
  const std::string record = "echo \"$(basename $0) $*\" >> " + (bin / "calls").string() + "\n";
  // Each launcher call pops the next exit code from the list file.
  const std::string pop = "rc=$(head -n1 " + (bin / "rcs").string() + "); sed -i 1d " +
                          (bin / "rcs").string() + "; " + launcher_body + "\nexit ${rc:-0}\n";
  for (const char* name : {"srun", "mpirun"}) {
    std::ofstream(bin / name) << "#!/bin/sh\n" << record << pop;
    std::filesystem::permissions(bin / name, std::filesystem::perms::owner_all);
  }
  std::ofstream(bin / "scontrol") << "#!/bin/sh\n" << record;
  std::filesystem::permissions(bin / "scontrol", std::filesystem::perms::owner_all);
  std::ofstream(bin / "rcs") << launcher_rcs;
}

TEST_F(Resume, EvalOnlyReportsAndSummarisesTheCheckpointsOwnTraining) {
  const auto trained =
      run_command(job(2, "trained", "--steps 20 --lr 0.02 --adam-beta2 0.99 --noise 0.5"));
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const std::string trained_summary = read_text(dir.file("trained/summary.json"));
  // A command that names none of the training's options, whose defaults differ from them.
  const auto evaluated = run_command(job(2, "trained", "--eval-only --resume auto"));
  ASSERT_EQ(evaluated.exit_code, 0) << evaluated.output;
  const std::string report = read_text(dir.file("trained/eval/report.html"));
  for (const char* row : {"steps +20", "lr +0.02", "adam-beta2 +0.99", "noise +0.5",
                          "eval-noise +0,0.3,0.5", "eval-only +yes"}) {
    const std::regex shown(std::string("\n  ") + row + "\n");
    EXPECT_TRUE(std::regex_search(report, shown)) << row << "\n" << report;
    EXPECT_TRUE(std::regex_search(evaluated.output, shown)) << row << "\n" << evaluated.output;
  }
  const std::string summary = read_text(dir.file("trained/summary.json"));
  EXPECT_NE(summary.find("\"steps\": 20,"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"train_noise\": 0.5,"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"eval_only\": true,"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("samples_per_s"), std::string::npos) << summary;
  // The same network on the same clean test images: the training's final number.
  const std::regex clean_mse(R"("test_mse": \{"0\.0": ([0-9.e-]+), "0\.3": [0-9.e-]+, "0\.5")");
  std::smatch evaluated_mse, trained_mse;
  ASSERT_TRUE(std::regex_search(summary, evaluated_mse, clean_mse)) << summary;
  ASSERT_TRUE(std::regex_search(trained_summary, trained_mse,
                                std::regex(R"("test_mse": \{"0\.0": ([0-9.e-]+), "0\.5")")))
      << trained_summary;
  EXPECT_EQ(evaluated_mse[1], trained_mse[1]);
}

// The build the scripts ask (dae_dist --print-exit-codes, --print-run-dir): the tested one.
const std::string kBuild = std::filesystem::path(DAE_DIST_BIN).parent_path().string();

// A fake launcher's shell that leaves RUN/stopped.json as dae_dist's rank 0 does when a stop
// signal ends the run (include/dae/train/checkpoint.hpp, kStoppedFile).
std::string fake_stop_record(const std::string& run) {
  return "mkdir -p " + run + " && printf '{\\n  \"step\": 40,\\n  \"checkpoint\": \"" + run +
         "/checkpoints/ckpt_00000040.h5\",\\n  \"exit_code\": " + std::to_string(kExitPreempted) +
         "\\n}\\n' > " + run + "/" + kStoppedFile;
}

std::string sbatch(const std::filesystem::path& fakes, const std::string& script,
                   const std::string& args) {
  return "PATH=" + fakes.string() + ":$PATH DAE_BUILD=" + kBuild + " SLURM_JOB_ID=4242 " +
         "SLURM_NTASKS=4 SLURM_CPUS_PER_TASK=2 SLURM_SUBMIT_DIR=" + DAE_SOURCE_DIR + " bash " +
         DAE_SOURCE_DIR + "/slurm/" + script + " " + args;
}

TEST(Scripts, DaeDistTellsItsExitCodesAndRunDirToScripts) {
  // What launch/job_control.sh asks instead of reading the C++ source or the log.
  const auto codes = run_command(std::string(DAE_DIST_BIN) + " --print-exit-codes");
  EXPECT_EQ(codes.exit_code, 0) << codes.output;
  EXPECT_NE(("\n" + codes.output).find("\npreempted=" + std::to_string(kExitPreempted) + "\n"),
            std::string::npos)
      << codes.output;

  TempDir dir;
  std::ofstream(dir.file("run.ini")) << "data = d.h5\nrun-dir = " << dir.file("from_ini") << "\n";
  const std::string ask = std::string(DAE_DIST_BIN) + " --config " + dir.file("run.ini");
  const auto from_ini = run_command(ask + " --print-run-dir");
  EXPECT_EQ(from_ini.exit_code, 0) << from_ini.output;
  EXPECT_NE(from_ini.output.find(dir.file("from_ini") + "\n"), std::string::npos)
      << from_ini.output;
  // The command line wins, as in the run; nothing is created or trained.
  const auto overridden = run_command(ask + " --run-dir " + dir.file("given") + " --print-run-dir");
  EXPECT_NE(overridden.output.find(dir.file("given") + "\n"), std::string::npos)
      << overridden.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("given")));
  // Options that a run would refuse name no run dir.
  const auto refused = run_command(ask + " --steps -1 --print-run-dir");
  EXPECT_NE(refused.exit_code, 0) << refused.output;
  EXPECT_EQ(refused.output.find(dir.file("from_ini")), std::string::npos) << refused.output;
}

const std::vector<std::pair<std::string, std::string>> kTrainScripts = {
    {"train_single_node.sbatch", "mpirun"},
    {"train_single_node_gpu.sbatch", "mpirun"},
    {"train_multi_node.sbatch", "srun"},
    {"train_multi_node_gpu.sbatch", "srun"}};

TEST(Scripts, SbatchScriptsParseAndRequeueOnlyOnExitSeventyFive) {
  for (const char* script : {"train_single_node.sbatch", "train_single_node_gpu.sbatch",
                             "train_multi_node.sbatch", "train_multi_node_gpu.sbatch",
                             "test_mpi.sbatch"}) {
    const auto syntax = run_command("bash -n " + std::string(DAE_SOURCE_DIR) + "/slurm/" + script);
    EXPECT_EQ(syntax.exit_code, 0) << script << ": " << syntax.output;
  }
  for (const auto& [script, launcher] : kTrainScripts) {
    for (const int rc : {kExitPreempted, 0, 1}) {
      TempDir dir;
      write_fakes(dir.path(), std::to_string(rc) + "\n");
      const auto result = run_command(sbatch(dir.path(), script, "configs/seed.ini"));
      EXPECT_EQ(result.exit_code, rc) << script << ": " << result.output;
      const std::string calls = read_text(dir.path() / "calls");
      EXPECT_NE(calls.find(launcher + " "), std::string::npos) << calls;
      EXPECT_NE(calls.find("--config configs/seed.ini"), std::string::npos) << calls;
      EXPECT_NE(calls.find("--resume auto"), std::string::npos) << calls;
      EXPECT_NE(calls.find("--threads 2"), std::string::npos) << calls;
      EXPECT_EQ(calls.find("scontrol requeue 4242") != std::string::npos, rc == kExitPreempted)
          << script << " rc " << rc << ": " << calls;
    }
  }
}

TEST(Scripts, SbatchScriptsPassOptionsThroughAndFitTheLauncher) {
  for (const auto& [script, launcher] : kTrainScripts) {
    TempDir dir;
    write_fakes(dir.path(), "0\n");
    const auto result = run_command(
        sbatch(dir.path(), script, "configs/seed.ini --steps 20000 --resume none.h5 --threads 1"));
    EXPECT_EQ(result.exit_code, 0) << script << ": " << result.output;
    const std::string calls = read_text(dir.path() / "calls");
    // The user's options reach dae_dist, and replace the script's own instead of doubling them.
    EXPECT_NE(calls.find("--steps 20000"), std::string::npos) << calls;
    EXPECT_EQ(calls.find("--resume auto"), std::string::npos) << calls;
    EXPECT_EQ(testing::count_of(calls, "--threads"), 1u) << calls;
    EXPECT_EQ(calls.find("--device cuda") != std::string::npos,
              script.find("_gpu") != std::string::npos)
        << script << ": " << calls;
    if (launcher == "mpirun") {
      EXPECT_NE(calls.find("mpirun -np 4 "), std::string::npos) << calls;
      EXPECT_EQ(calls.find("--allow-run-as-root") != std::string::npos, getuid() == 0) << calls;
    } else {
      EXPECT_NE(calls.find("srun --mpi=pmix --kill-on-bad-exit=1 "), std::string::npos) << calls;
      EXPECT_EQ(calls.find("--cpu-bind"), std::string::npos) << calls;
    }
  }
  // The preemption code comes from dae_dist --print-exit-codes only: no script spells it out.
  const auto literal = run_command(
      "cd " + std::string(DAE_SOURCE_DIR) + " && sed 's/#.*//' slurm/train_*.sbatch "
      "launch/job_control.sh launch/resume_loop.sh | grep -w " + std::to_string(kExitPreempted));
  EXPECT_NE(literal.exit_code, 0) << literal.output;
}

TEST(Scripts, AStopThatReachedTheLauncherItselfStillCountsAsPreempted) {
  // mpirun signalled directly (scancel signals every process, Ctrl-C the process group) exits 1
  // after its ranks wrote the checkpoint and exited 75: the ranks' RUN_DIR/stopped.json decides.
  for (const auto& [script, launcher] : kTrainScripts) {
    TempDir dir;
    const std::string run = dir.file("run");
    write_fakes(dir.path(), "1\n", fake_stop_record(run));
    const auto result =
        run_command(sbatch(dir.path(), script, "configs/seed.ini --run-dir " + run));
    EXPECT_EQ(result.exit_code, kExitPreempted) << script << ": " << result.output;
    EXPECT_NE(read_text(dir.path() / "calls").find("scontrol requeue 4242"), std::string::npos);
    EXPECT_NE(result.output.find("report this planned exit, not a failure"), std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find(run + "/checkpoints/ckpt_00000040.h5 at step 40"),
              std::string::npos)
        << result.output;
  }
  // Without a record of this launch, an exit of 1 is a failure: an earlier launch's stopped.json
  // (older than this launch) does not count.
  TempDir failed;
  const std::string run = failed.file("run");
  ASSERT_EQ(run_command(fake_stop_record(run) + " && touch -d '1 hour ago' " + run + "/" +
                        kStoppedFile).exit_code, 0);
  write_fakes(failed.path(), "1\n", "echo 'rank 1: data.h5: read failed'");
  const auto result = run_command(sbatch(failed.path(), "train_single_node.sbatch",
                                         "--run-dir " + run));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_EQ(read_text(failed.path() / "calls").find("scontrol requeue"), std::string::npos);
}

TEST(Scripts, SigtermToTheBatchShellStopsTheRanksAndIsNotRequeued) {
  for (const auto& [script, launcher] : kTrainScripts) {
    TempDir dir;
    // The launcher runs until the script forwards the stop to it (as SIGUSR1, which mpirun and
    // srun pass to every rank), then its ranks leave their stopped.json and it exits 1, as
    // mpirun does when scancel's SIGTERM reached it too: the record decides.
    const std::string run = dir.file("run");
    write_fakes(dir.path(), "1\n",
                "stop() { kill $s; " + fake_stop_record(run) + "; exit $rc; }; sleep 20 & s=$!; "
                "trap stop USR1; wait; exit 9");
    const auto result = run_command(
        "( " + sbatch(dir.path(), script, "configs/seed.ini --run-dir " + run) + " & job=$!; " +
        "for i in $(seq 100); do [ -s " + (dir.path() / "calls").string() +
        " ] && break; sleep 0.1; done; sleep 0.5; kill -TERM $job; wait $job; echo EXIT=$? )");
    EXPECT_NE(result.output.find("EXIT=" + std::to_string(kExitPreempted)), std::string::npos)
        << script << ": " << result.output;
    EXPECT_NE(result.output.find("SIGTERM (scancel, or Slurm ending the job): checkpoint written"),
              std::string::npos)
        << result.output;
    EXPECT_EQ(read_text(dir.path() / "calls").find("scontrol requeue"), std::string::npos)
        << read_text(dir.path() / "calls");
  }
}

TEST(Scripts, ResumeLoopRestartsWhileExitCodeIsSeventyFive) {
  TempDir dir;
  write_fakes(dir.path(), "75\n75\n0\n");
  const std::string loop = " DAE_BUILD=" + kBuild + " bash " + DAE_SOURCE_DIR +
                           "/launch/resume_loop.sh";
  const auto result = run_command("PATH=" + dir.path().string() + ":$PATH" + loop +
                                  " --config x.ini");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const std::string calls = read_text(dir.path() / "calls");
  EXPECT_EQ(std::count(calls.begin(), calls.end(), '\n'), 3) << calls;
  EXPECT_NE(calls.find("--config x.ini --resume auto"), std::string::npos) << calls;

  TempDir limited;
  write_fakes(limited.path(), "75\n75\n75\n75\n");
  const auto gave_up =
      run_command("DAE_MAX_RESTARTS=2 PATH=" + limited.path().string() + ":$PATH" + loop);
  EXPECT_EQ(gave_up.exit_code, 75) << gave_up.output;
  EXPECT_NE(gave_up.output.find("giving up"), std::string::npos) << gave_up.output;

  // mpirun's own exit 1 after its ranks stopped at a checkpoint is a preemption too.
  TempDir signalled;
  const std::string run = signalled.file("run");
  write_fakes(signalled.path(), "1\n0\n", fake_stop_record(run));
  const auto restarted = run_command("PATH=" + signalled.path().string() + ":$PATH" + loop +
                                     " --data d.h5 --run-dir " + run);
  EXPECT_EQ(restarted.exit_code, 0) << restarted.output;
  EXPECT_EQ(testing::count_of(read_text(signalled.path() / "calls"), "mpirun "), 2u)
      << restarted.output;
}

}  // namespace
}  // namespace dae
