// Config: file vs command line, defaults, every kind of bad value rejected with its message.
#include <gtest/gtest.h>

#include <fstream>

#include "dae/core/config.hpp"
#include "dae/core/error.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

Config parse(std::vector<std::string> args) {
  args.insert(args.begin(), "dae_dist");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return parse_config(static_cast<int>(argv.size()), argv.data());
}

std::string error_of(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::string error_of_description(const std::string& text) {
  try {
    config_from_description(text);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(Config, DefaultsAreTheSeedProtocolWithALinearOutput) {
  const Config config = parse({"--data", "d.h5"});
  EXPECT_EQ(config.steps, 10000);
  EXPECT_EQ(config.batch_size, 50);
  EXPECT_DOUBLE_EQ(config.lr, 0.01);
  EXPECT_EQ(config.lr_warmup, 500);
  EXPECT_EQ(config.lr_schedule, LrSchedule::kCosine);
  EXPECT_DOUBLE_EQ(config.lr_floor, 0.0);
  EXPECT_DOUBLE_EQ(config.adam_eps, 1e-8);
  EXPECT_DOUBLE_EQ(config.adam_beta1, 0.9);
  EXPECT_DOUBLE_EQ(config.adam_beta2, 0.999);
  EXPECT_DOUBLE_EQ(config.clip_grad_norm, 0.02);
  EXPECT_EQ(config.model.output_activation, Activation::kNone);
  EXPECT_EQ(config.eval_noise, (std::vector<double>{0.0, 0.3, 0.5, 0.7, 0.9, 1.0}));
}

TEST(Config, CommandLineWinsOverFile) {
  testing::TempDir dir;
  std::ofstream(dir.file("run.ini")) << "# comment\ndata = file.h5\nsteps = 200\nlr = 0.002\n"
                                        "eval-noise = 0.1, 0.2\n";
  const Config from_file = parse({"--config", dir.file("run.ini")});
  EXPECT_EQ(from_file.data, "file.h5");
  EXPECT_EQ(from_file.steps, 200);
  EXPECT_DOUBLE_EQ(from_file.lr, 0.002);
  // 0 (clean) and the training noise are always added, in order.
  EXPECT_EQ(from_file.eval_noise, (std::vector<double>{0.0, 0.1, 0.2, 0.3}));
  const Config overridden = parse({"--config", dir.file("run.ini"), "--steps", "7", "--data=x.h5"});
  EXPECT_EQ(overridden.steps, 7);
  EXPECT_EQ(overridden.data, "x.h5");
  EXPECT_DOUBLE_EQ(overridden.lr, 0.002);
}

TEST(Config, BadValuesAreRejectedWithTheirOption) {
  EXPECT_NE(error_of({"--data", "d", "--steps", "0"}).find("steps: must be > 0"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--steps=-3"}).find("steps: must be > 0"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--batch-size", "0"}).find("batch-size: must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--noise=-0.1"}).find("noise: must be >= 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--lr", "0"}).find("lr: must be > 0"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--lr-warmup=-1"}).find("lr-warmup: must be >= 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--model", "rnn"}).find("model: 'rnn'"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--noise-type", "speckle"}).find("noise-type: 'speckle'"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--eval-only"}).find("eval-only: needs --resume"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--steps", "ten"}).find("'ten'"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--steps", "ten"}).find("steps"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--lr", "fast"}).find("lr"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--bogus", "1"}).find("bogus"), std::string::npos);
  EXPECT_NE(error_of({"--steps", "5"}).find("data: missing"), std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--output-activation", "tanh"}).find("output-activation"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--eval-noise", "0.1,x"}).find("eval-noise"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--precision", "fp16"}).find("precision: 'fp16'"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--cuda-graph", "--device", "cpu"})
                .find("cuda-graph: needs a GPU, but device = cpu"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--cuda-graph", "--backend", "mpi"})
                .find("cuda-graph: needs backend = nccl"),
            std::string::npos);
  EXPECT_NE(error_of({"--config", "/nonexistent/run.ini"}).find("/nonexistent/run.ini: cannot open"),
            std::string::npos);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--data", "d", "--steps", "0"}, {"--bogus"}, {"--data", "d", "--lr", "x"}}) {
    const std::string message = error_of(args);
    EXPECT_EQ(message.rfind("config: ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
  }
}

TEST(Config, ScheduleAdamAndClippingAreParsedValidatedAndDescribed) {
  const Config config = parse({"--data", "d", "--lr-schedule", "cosine", "--lr-floor", "0.05",
                               "--adam-eps", "1e-6", "--adam-beta1", "0.8", "--adam-beta2",
                               "0.99", "--clip-grad-norm", "2"});
  EXPECT_EQ(config.lr_schedule, LrSchedule::kCosine);
  EXPECT_DOUBLE_EQ(config.lr_floor, 0.05);
  EXPECT_DOUBLE_EQ(config.adam_eps, 1e-6);
  EXPECT_DOUBLE_EQ(config.adam_beta1, 0.8);
  EXPECT_DOUBLE_EQ(config.adam_beta2, 0.99);
  EXPECT_DOUBLE_EQ(config.clip_grad_norm, 2);
  // describe_config is what checkpoints store and what a resume compares against.
  const std::string described = describe_config(config);
  for (const char* row :
       {"lr-schedule", "lr-floor", "adam-eps", "adam-beta1", "adam-beta2", "clip-grad-norm"})
    EXPECT_NE(described.find(row), std::string::npos) << row;
  EXPECT_NE(error_of({"--data", "d", "--lr-schedule", "step"}).find("lr-schedule: 'step'"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--lr-floor", "1.5"}).find("lr-floor: must be >= 0 and at most 1"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--adam-eps", "0"}).find("adam-eps: must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--clip-grad-norm=-1"}).find("clip-grad-norm: must be >= 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--adam-eps", "nan"}).find("adam-eps: must be a finite"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--adam-beta2", "1"})
                .find("adam-beta2: must be >= 0 and at most 0.999999 (got 1)"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--adam-beta1=-0.1"}).find("adam-beta1: must be >= 0"),
            std::string::npos);
}

TEST(Config, RecyclingIsParsedValidatedAndDescribed) {
  const Config config =
      parse({"--data", "d", "--recycle-dead-every", "100", "--recycle-dead-until", "0.75"});
  EXPECT_EQ(config.recycle_dead_every, 100);
  EXPECT_DOUBLE_EQ(config.recycle_dead_until, 0.75);
  const std::string described = describe_config(config);
  for (const char* row : {"recycle-dead-every", "recycle-dead-until"})
    EXPECT_NE(described.find(row), std::string::npos) << row;
  EXPECT_NE(error_of({"--data", "d", "--recycle-dead-every=-5"})
                .find("recycle-dead-every: must be >= 0"),
            std::string::npos);
  EXPECT_NE(error_of({"--data", "d", "--recycle-dead-until", "2"})
                .find("recycle-dead-until: must be >= 0 and at most 1"),
            std::string::npos);
}

TEST(Config, DescriptionReadsBackToTheSameConfiguration) {
  testing::TempDir dir;
  std::ofstream(dir.file("run.ini")) << "lr-schedule = constant\ninit = torch\n";
  const Config config = parse(
      {"--config", dir.file("run.ini"), "--data", "d.h5", "--steps", "20", "--lr", "0.02",
       "--adam-beta2", "0.99", "--noise-type", "salt-pepper", "--noise", "0.25",
       "--eval-noise", "0.5", "--model", "mlp", "--output-activation", "relu",
       "--global-batch-size", "40", "--virtual-shards", "4", "--share-gpus", "--resume", "auto"});
  const std::string described = describe_config(config);
  const Config back = config_from_description(described);
  EXPECT_EQ(describe_config(back), described);
  EXPECT_EQ(back.config_file, dir.file("run.ini"));
  EXPECT_EQ(back.steps, 20);
  EXPECT_DOUBLE_EQ(back.adam_beta2, 0.99);
  EXPECT_EQ(back.noise_type, NoiseType::kSaltPepper);
  EXPECT_EQ(back.model.kind, ModelKind::kMlp);
  EXPECT_EQ(back.global_batch_size, 40);
  EXPECT_EQ(back.eval_noise, (std::vector<double>{0.0, 0.25, 0.5}));
  EXPECT_EQ(back.resume, "auto");
  // "(none)" and "(no)" show empty values; a row this version lacks is no error.
  const Config defaults = config_from_description(describe_config(Config{}) + "  retired  7\n");
  EXPECT_EQ(defaults.config_file, "");
  EXPECT_EQ(defaults.resume, "");
  EXPECT_EQ(describe_config(defaults), describe_config(Config{}));
  EXPECT_NE(error_of_description("  lr  fast\n").find("config: lr: 'fast'"),
            std::string::npos);
}

TEST(Config, EvaluationTakesTheTrainingFromTheCheckpointAndTheJobFromTheCommand) {
  const Config trained = parse({"--data", "train.h5", "--run-dir", "trained", "--steps", "20",
                                "--lr", "0.02", "--noise-type", "mask", "--noise", "0.5",
                                "--threads", "3", "--eval-batch", "7"});
  const Config command = parse({"--data", "test.h5", "--run-dir", "evaluated", "--eval-noise",
                                "0.1", "--threads", "2", "--eval-only", "--resume", "auto"});
  const Config config = evaluation_config(trained, command);
  EXPECT_EQ(config.steps, 20);
  EXPECT_DOUBLE_EQ(config.lr, 0.02);
  EXPECT_EQ(config.noise_type, NoiseType::kMask);
  EXPECT_EQ(config.data, "test.h5");
  EXPECT_EQ(config.run_dir, "evaluated");
  EXPECT_EQ(config.threads, 2);
  EXPECT_EQ(config.eval_batch, command.eval_batch);
  EXPECT_TRUE(config.eval_only);
  // The command's levels (with its own noise, 0.3), 0 and the trained noise.
  EXPECT_EQ(config.eval_noise, (std::vector<double>{0.0, 0.1, 0.3, 0.5}));
  // A level a gaussian command may ask for is no fraction of pixels for the mask it trained with.
  const Config wide =
      parse({"--data", "d", "--eval-noise", "2", "--eval-only", "--resume", "auto"});
  try {
    evaluation_config(trained, wide);
    ADD_FAILURE() << "eval-noise 2 accepted for mask noise";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("eval-noise: for mask levels are fractions"),
              std::string::npos)
        << error.what();
  }
}

TEST(Config, UnknownKeyInFileIsRejected) {
  testing::TempDir dir;
  std::ofstream(dir.file("bad.ini")) << "data = d.h5\nstepz = 3\n";
  EXPECT_NE(error_of({"--config", dir.file("bad.ini")}).find("stepz"), std::string::npos);
}

TEST(Config, HelpListsEveryOptionWithDefaults) {
  try {
    parse({"--help"});
    FAIL() << "expected InfoRequested";
  } catch (const InfoRequested& help) {
    for (const char* key : {"--data", "--run-dir", "--steps", "--batch-size", "--lr", "--noise",
                            "--seed", "--log-every", "--threads", "--eval-noise"})
      EXPECT_NE(help.text.find(key), std::string::npos) << key;
    EXPECT_NE(help.text.find("10000"), std::string::npos);
  }
}

}  // namespace
}  // namespace dae
