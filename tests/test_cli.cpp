// The two programs as a user runs them: exit codes, one-line errors, nothing half-written left
// behind, no hanging ranks, and a small end-to-end training run.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "dae/dist/cuda_plugin.hpp"
#include "dae/data/dataset.hpp"
#include "dae/dist/device.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/image_io.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::run_command;
using testing::TempDir;

using testing::count_of;

std::size_t files_in(const std::filesystem::path& dir) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++count;
  return count;
}

class Prepare : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_idx_dir(dir.path() / "idx", testing::synthetic_split(30, 1),
                           testing::synthetic_split(10, 2), /*gzip=*/false);
    std::filesystem::create_directories(dir.path() / "out");
  }
  testing::CommandResult prepare() {
    return run_command(std::string(DAE_PREPARE_BIN) + " --idx-dir " + dir.file("idx") +
                       " --out " + dir.file("out/data.h5"));
  }
  TempDir dir;
};

TEST_F(Prepare, WritesTheDataFile) {
  const auto result = prepare();
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(count_rows(dir.file("out/data.h5"), "train"), 30u);
  EXPECT_EQ(count_rows(dir.file("out/data.h5"), "test"), 10u);
}

TEST_F(Prepare, EachBadInputGivesOneLineAndNoOutputFile) {
  const auto images = dir.path() / "idx" / "train-images-idx3-ubyte";
  const auto labels = dir.path() / "idx" / "train-labels-idx1-ubyte";
  std::vector<std::uint8_t> good_images, good_labels;
  {
    std::ifstream in(images, std::ios::binary);
    good_images.assign(std::istreambuf_iterator<char>(in), {});
    std::ifstream lin(labels, std::ios::binary);
    good_labels.assign(std::istreambuf_iterator<char>(lin), {});
  }
  struct Case {
    std::string name, expected;
    std::function<void()> corrupt;
  };
  const std::vector<Case> cases = {
      {"bad magic", "wrong magic number",
       [&] { auto b = good_images; b[1] = 7; testing::write_bytes(images, b); }},
      {"wrong dims", "wrong dimensions",
       [&] {
         testing::write_bytes(images, testing::idx_bytes({30, 28, 27},
                                                         std::vector<std::uint8_t>(30 * 28 * 27)));
       }},
      {"truncated", "truncated",
       [&] { testing::write_bytes(images, {good_images.begin(), good_images.end() - 100}); }},
      {"count mismatch", "30 images but",
       [&] { testing::write_bytes(labels, testing::idx_bytes({29}, std::vector<std::uint8_t>(29, 1))); }},
      {"label > 9", "label 12 at index 4",
       [&] { auto b = good_labels; b[8 + 4] = 12; testing::write_bytes(labels, b); }},
      {"missing file", "missing", [&] { std::filesystem::remove(images); }},
  };
  for (const Case& c : cases) {
    testing::write_bytes(images, good_images);
    testing::write_bytes(labels, good_labels);
    c.corrupt();
    const auto result = prepare();
    EXPECT_EQ(result.exit_code, 1) << c.name << ": " << result.output;
    EXPECT_NE(result.output.find(c.expected), std::string::npos) << c.name << ": " << result.output;
    EXPECT_EQ(result.output.rfind("dae_prepare: ", 0), 0u) << c.name;
    EXPECT_EQ(count_of(result.output, "\n"), 1u) << c.name << ": " << result.output;
    EXPECT_EQ(files_in(dir.path() / "out"), 0u) << c.name << ": something was left behind";
  }
}

class Dist : public ::testing::Test {
 protected:
  void SetUp() override {
    write_data_file(dir.file("data.h5"), testing::synthetic_split(200, 3),
                    testing::synthetic_split(50, 4), "synthetic");
  }
  testing::CommandResult dist(int ranks, const std::string& args) {
    return run_command("timeout 120 " + testing::mpirun(ranks) + " " + DAE_DIST_BIN + " " + args);
  }
  TempDir dir;
};

TEST_F(Dist, BadConfigEndsTheJobWithOneLineFromRankZero) {
  const std::string data = " --data " + dir.file("data.h5") + " --run-dir " + dir.file("run");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--steps 0" + data, "dae_dist: config: steps: must be > 0"},
      {"--batch-size=-1" + data, "dae_dist: config: batch-size: must be > 0"},
      {"--noise=-1" + data, "dae_dist: config: noise: must be >= 0"},
      {"--lr 0" + data, "dae_dist: config: lr: must be > 0"},
      {"--steps abc" + data, "dae_dist: config: steps: 'abc' is not a whole number"},
      {"--frobnicate 1" + data, "dae_dist: config: unrecognised option '--frobnicate'"},
      {"--data " + dir.file("absent.h5"), "absent.h5: cannot open"},
  };
  for (const auto& [args, expected] : cases) {
    const auto result = dist(2, args);
    EXPECT_NE(result.exit_code, 0) << args;
    EXPECT_LT(result.seconds, 60) << args;
    EXPECT_EQ(count_of(result.output, expected), 1u) << args << "\n" << result.output;
  }
}

TEST_F(Dist, GpuRequestsOnANodeWithoutAGpuEndTheJobWithOneLine) {
  if (nvidia_devices_present()) GTEST_SKIP() << "this node has NVIDIA devices";
  const std::string data = " --data " + dir.file("data.h5") + " --run-dir " + dir.file("run");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--device cuda" + data,
       cuda_built() ? "dae_dist: device: cuda requested, but no CUDA device is visible"
                    : "dae_dist: device: cuda requested, but this dae_dist was built without CUDA"},
      {"--backend nccl" + data,
       nccl_built() ? "dae_dist: backend: nccl needs device = cuda"
                    : "dae_dist: backend: nccl requested, but this dae_dist was built without NCCL"},
      {"--cuda-graph" + data, "dae_dist: cuda-graph: needs a GPU, but this rank runs on cpu"},
  };
  for (const auto& [args, expected] : cases) {
    const auto result = dist(2, args);
    EXPECT_NE(result.exit_code, 0) << args;
    EXPECT_EQ(count_of(result.output, expected), 1u) << args << "\n" << result.output;
  }
}

TEST_F(Dist, MalformedDataFileAndTooFewRowsAreRejected) {
  testing::write_bytes(dir.path() / "junk.h5", std::vector<std::uint8_t>(4096, 0x42));
  auto junk = dist(2, "--data " + dir.file("junk.h5"));
  EXPECT_NE(junk.exit_code, 0);
  EXPECT_EQ(count_of(junk.output, "junk.h5: not an HDF5 file"), 1u) << junk.output;

  write_data_file(dir.file("tiny.h5"), testing::synthetic_split(3, 1),
                  testing::synthetic_split(3, 2), "tiny");
  auto tiny = dist(4, "--data " + dir.file("tiny.h5"));
  EXPECT_NE(tiny.exit_code, 0);
  EXPECT_EQ(count_of(tiny.output, "has 3 rows, fewer than the 4 ranks"), 1u) << tiny.output;
}

TEST_F(Dist, AFailingRankEndsTheWholeJobInsteadOfHanging) {
  const auto result =
      run_command("timeout 60 " + testing::mpirun(2) + " " + std::string(DAE_FAULT_PROBE_BIN));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.exit_code, 124) << "the job hung until timeout killed it";
  EXPECT_LT(result.seconds, 30);
  EXPECT_NE(result.output.find("fault_probe: rank 1: injected failure at step 3"),
            std::string::npos)
      << result.output;
}

// The failing rank holds a resource whose normal release is collective (as ncclCommDestroy is):
// unwinding must abort it, or that rank waits in the release while the others wait in the
// all-reduce, and nobody reaches MPI_Abort.
TEST_F(Dist, AFailingRankAbortsRatherThanReleasesCollectiveResourcesWhileUnwinding) {
  const auto result = run_command("timeout 60 " + testing::mpirun(2) + " " +
                                  std::string(DAE_FAULT_PROBE_BIN) + " --collective-teardown");
  EXPECT_NE(result.exit_code, 124) << "the job hung until timeout killed it";
  EXPECT_NE(result.exit_code, 0);
  EXPECT_LT(result.seconds, 30);
  EXPECT_EQ(count_of(result.output, "fault_probe: rank 1: injected failure at step 3"), 1u)
      << result.output;
}

TEST_F(Dist, TrainsAndWritesSummary) {
  const auto result = dist(2, "--data " + dir.file("data.h5") + " --run-dir " + dir.file("run") +
                                  " --steps 30 --batch-size 10 --log-every 10 --eval-noise 0,0.5");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("rank 0/2: rows [0, 100)"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("rank 1/2: rows [100, 200)"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("step     30/30"), std::string::npos) << result.output;
  std::ifstream in(dir.file("run/summary.json"));
  std::stringstream json;
  json << in.rdbuf();
  for (const char* key : {"\"world_size\": 2", "\"steps\": 30", "\"batch_size_per_rank\": 10",
                          "\"samples_per_s\"", "\"wall_s\"", "\"train_loss_final\"",
                          "\"test_mse\"", "\"0.0\"", "\"0.3\"", "\"0.5\""})
    EXPECT_NE(json.str().find(key), std::string::npos) << key << " in\n" << json.str();
}

TEST_F(Dist, WarnsWhenAReluLayerHasDied) {
  // A learning rate of 5 drives every pre-activation of the last layer negative within steps.
  const auto dead = dist(1, "--data " + dir.file("data.h5") + " --run-dir " + dir.file("dead") +
                                " --output-activation relu --lr 5 --lr-warmup 0 --steps 40 --log-every 20");
  ASSERT_EQ(dead.exit_code, 0) << dead.output;
  EXPECT_EQ(count_of(dead.output, "a ReLU layer has died"), 1u) << dead.output;
  const auto healthy = dist(1, "--data " + dir.file("data.h5") + " --run-dir " +
                                   dir.file("healthy") + " --steps 40 --log-every 20");
  ASSERT_EQ(healthy.exit_code, 0) << healthy.output;
  EXPECT_EQ(count_of(healthy.output, "has died"), 0u) << healthy.output;
}

// Every file a report's <img src="..."> names.
std::vector<std::string> referenced_images(const std::string& html) {
  std::vector<std::string> names;
  const std::regex source(R"re(<img src="([^"]+)")re");
  for (std::sregex_iterator match(html.begin(), html.end(), source), end; match != end; ++match)
    names.push_back((*match)[1]);
  return names;
}

TEST_F(Dist, EvaluationWritesGridsMetricsPlotAndAReportABrowserLoads) {
  const std::string run = dir.file("eval_run");
  const auto result = dist(2, "--data " + dir.file("data.h5") + " --run-dir " + run +
                                  " --steps 40 --batch-size 10 --log-every 10 --eval-every 20"
                                  " --eval-noise 0,0.5,1");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string eval = run + "/eval";
  for (const char* level : {"0.00", "0.30", "0.50", "1.00"}) {
    const GrayImage grid = read_png(eval + "/grid_gaussian_" + level + ".png");
    EXPECT_EQ(grid.width, 10 * 84 + 11 * 4) << level;  // one digit of each class
    EXPECT_EQ(grid.height, 3 * 84 + 4 * 4) << level;   // clean, noisy, denoised
  }
  EXPECT_EQ(read_png(eval + "/code_layer.png").height, 4 * 28 + 5 * 2);  // 4 digits, 7x7 x4
  EXPECT_GT(read_png(eval + "/loss.png").width, 0);
  EXPECT_EQ(read_png(eval + "/sweep.png").width, 1500);

  // Two evaluations (steps 20 and 40) of four levels each, in the CSV and in eval.h5.
  std::ifstream csv_file(eval + "/metrics.csv");
  std::stringstream csv;
  csv << csv_file.rdbuf();
  EXPECT_EQ(csv.str().rfind("step,noise_type,noise,mse,psnr,ssim,images,dead_channels\n", 0), 0u);
  EXPECT_EQ(count_of(csv.str(), "\n20,gaussian,"), 4u) << csv.str();
  EXPECT_EQ(count_of(csv.str(), "\n40,gaussian,"), 4u) << csv.str();
  const H5File h5 = H5File::open_read_only(eval + "/eval.h5");
  EXPECT_EQ(h5.read<std::int64_t>("/step").size(), 8u);
  EXPECT_EQ(h5.read<double>("/ssim").size(), 8u);
  for (const std::int64_t dead : h5.read<std::int64_t>("/dead_channels")) {
    EXPECT_GE(dead, 0);
    EXPECT_LE(dead, 16 + 32 + 16 + 1);
  }

  std::ifstream report_file(eval + "/report.html");
  std::stringstream report;
  report << report_file.rdbuf();
  EXPECT_NE(report.str().find("Dead ReLU channels (0 for every clean test image) at step 40: "
                              "encoder1 "),
            std::string::npos);
  const auto images = referenced_images(report.str());
  EXPECT_EQ(images.size(), 7u);  // loss, sweep, four grids, code layer
  for (const std::string& name : images) EXPECT_NO_THROW(read_png(eval + "/" + name)) << name;

  // The page as a browser sees it: loads, runs its check, every image decoded.
  const auto browser = run_command(
      "timeout 60 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=10000 "
      "--dump-dom file://" + eval + "/report.html 2>/dev/null");
  ASSERT_EQ(browser.exit_code, 0) << browser.output;
  EXPECT_NE(browser.output.find("data-images=\"7\""), std::string::npos) << browser.output;
  EXPECT_NE(browser.output.find("data-images-broken=\"0\""), std::string::npos)
      << browser.output;

  // --eval-only on the final checkpoint reproduces the final evaluation's numbers.
  const auto again = dist(2, "--data " + dir.file("data.h5") + " --run-dir " + run +
                                 " --eval-noise 0,0.5,1 --eval-only --resume " + run +
                                 "/checkpoints/ckpt_00000040.h5");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const std::regex clean_line(R"(test gaussian 0\.00: MSE ([0-9.]+))");
  std::smatch trained, evaluated;
  ASSERT_TRUE(std::regex_search(result.output, trained, clean_line)) << result.output;
  ASSERT_TRUE(std::regex_search(again.output, evaluated, clean_line)) << again.output;
  EXPECT_EQ(trained[1], evaluated[1]);
}

TEST_F(Dist, FullyConnectedModelAndOtherNoiseTypesTrain) {
  for (const std::string& args : {std::string("--model mlp"),
                                  std::string("--noise-type salt-pepper --noise 0.2"),
                                  std::string("--noise-type mask --noise 0.67")}) {
    const auto result = dist(1, "--data " + dir.file("data.h5") + " --run-dir " +
                                    dir.file("variant") + " --steps 20 --eval-noise 0,0.5 " + args);
    EXPECT_EQ(result.exit_code, 0) << args << "\n" << result.output;
  }
  const auto bad = dist(1, "--data " + dir.file("data.h5") + " --noise-type mask --noise 1.5");
  EXPECT_EQ(count_of(bad.output, "noise: for mask it is a fraction of pixels, at most 1"), 1u)
      << bad.output;
}

}  // namespace
}  // namespace dae
