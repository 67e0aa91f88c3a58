// TensorBoard event files as TensorBoard itself reads them: the tensorboard package from PyPI
// (in the project's venv) loads RUN_DIR/tensorboard after a run and a resume from an older
// checkpoint, and the tags, steps and values must be the run's own.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "dae/data/dataset.hpp"
#include "dae/io/tensorboard.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::run_command;

TEST(TensorBoardRecords, Crc32cMatchesTheCastagnoliCheckValue) {
  const std::string check = "123456789";  // the standard check input of every CRC definition
  EXPECT_EQ(crc32c(reinterpret_cast<const std::uint8_t*>(check.data()), check.size()),
            0xE3069283u);
}

// Prints "tag step value" for every scalar, "image tag step width height" for every image, as
// TensorBoard's EventAccumulator (with its default purge of orphaned steps) sees the run.
constexpr const char* kReader = R"(import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
acc.Reload()
for tag in sorted(acc.Tags()['scalars']):
    for e in acc.Scalars(tag):
        print(tag, e.step, repr(e.value))
for tag in sorted(acc.Tags()['images']):
    for e in acc.Images(tag):
        print('image', tag, e.step, e.width, e.height, len(e.encoded_image_string))
)";

TEST(TensorBoardEvents, TensorBoardReadsTheRunAndAResumeWithoutDuplicatedSteps) {
  testing::TempDir dir;
  write_data_file(dir.file("data.h5"), testing::synthetic_split(200, 3),
                  testing::synthetic_split(20, 4), "synthetic");
  const std::string run_dir = dir.file("run");
  const std::string job = testing::mpirun(2) + " " + DAE_DIST_BIN + " --data " +
                          dir.file("data.h5") + " --run-dir " + run_dir +
                          " --batch-size 10 --eval-noise 0,0.5 --log-every 10 --eval-every 20"
                          " --checkpoint-every 20 --keep-checkpoints 5 ";
  const auto first = run_command(job + "--steps 30");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  // Resumed from step 20: the first part's step 30 is logged again by the second part.
  const auto second = run_command(job + "--steps 40 --resume " + run_dir +
                                  "/checkpoints/ckpt_00000020.h5");
  ASSERT_EQ(second.exit_code, 0) << second.output;

  std::ofstream(dir.file("read.py")) << kReader;
  const auto read = run_command(std::string(DAE_PYTHON) + " " + dir.file("read.py") + " " +
                                run_dir + "/tensorboard");
  ASSERT_EQ(read.exit_code, 0) << read.output;
  std::vector<std::int64_t> loss_steps;
  std::map<std::int64_t, double> loss_at;
  std::set<std::string> tags;
  std::istringstream lines(read.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string tag;
    fields >> tag;
    if (tag == "image") fields >> tag;
    tags.insert(tag);
    std::int64_t step = 0;
    double value = 0;
    fields >> step >> value;
    if (tag == "train/loss") {
      loss_steps.push_back(step);
      loss_at[step] = value;
    }
  }
  for (const char* expected :
       {"train/loss", "train/learning_rate", "train/samples_per_s", "test_mse/noise_0.00",
        "test_mse/noise_0.50", "test_psnr/noise_0.00", "test_ssim/noise_0.50",
        "grid/noise_0.00", "grid/noise_0.50", "dead_channels/encoder1",
        "dead_channels/decoder1", "test_dead_channels/encoder2"})
    EXPECT_EQ(tags.count(expected), 1u) << expected << "\n" << read.output;
  EXPECT_EQ(loss_steps, (std::vector<std::int64_t>{10, 20, 30, 40})) << read.output;
  // The values are the ones the log printed (6 decimals there), the second part's at 30 and 40.
  const std::regex progress(R"(step +(\d+)/\d+ \| loss ([0-9.]+))");
  for (const std::string* log : {&first.output, &second.output})
    for (std::sregex_iterator it(log->begin(), log->end(), progress), end; it != end; ++it) {
      const std::int64_t step = std::stoll((*it)[1]);
      if (log == &first.output && step > 20) continue;  // purged: the abandoned line
      EXPECT_NEAR(loss_at[step], std::stod((*it)[2]), 1e-6) << "step " << step;
    }
  EXPECT_NE(read.output.find("image grid/noise_0.50 40 "), std::string::npos) << read.output;
}

}  // namespace
}  // namespace dae
