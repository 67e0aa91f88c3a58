// Multi-rank behaviour (run by ctest under mpirun -np 2 and -np 4): collectives, gradient
// averaging against one big batch, identical replicas, a short training run, shared failures.
#include <gtest/gtest.h>

#include <filesystem>

#include "dae/train/checkpoint.hpp"
#include "dae/model/cpu_kernels.hpp"
#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/eval/evaluator.hpp"
#include "dae/model/model.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/train/trainer.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

class MultiRank : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
  MpiComm world{MPI_COMM_WORLD};
  MpiCommunicator comm{world};
};

// A data file written by rank 0 into a directory every rank can see; removed at the end.
class SharedDataFile {
 public:
  SharedDataFile(Communicator& comm, std::uint32_t train_rows, std::uint32_t test_rows)
      : comm_(comm) {
    torch::Tensor name = torch::zeros({256}, torch::kUInt8);
    if (comm.rank() == 0) {
      dir_ = std::make_unique<testing::TempDir>();
      write_data_file(dir_->file("data.h5"), testing::synthetic_split(train_rows, 11),
                      testing::synthetic_split(test_rows, 12), "synthetic");
      const std::string path = dir_->file("data.h5");
      std::copy(path.begin(), path.end(), name.data_ptr<std::uint8_t>());
    }
    comm.broadcast(name, 0);
    path_ = reinterpret_cast<const char*>(name.data_ptr<std::uint8_t>());
  }
  ~SharedDataFile() { comm_.barrier(); }  // rank 0 removes the directory after everyone is done
  const std::string& path() const { return path_; }
  std::string run_dir(const std::string& name) const {
    return (std::filesystem::path(path_).parent_path() / name).string();
  }

 private:
  Communicator& comm_;
  std::unique_ptr<testing::TempDir> dir_;
  std::string path_;
};

// A quiet configuration for a short run on `data` (defaults otherwise: lr 0.01, noise 0.3).
Config short_run(const SharedDataFile& data, long steps, long batch_size) {
  Config config;
  config.data = data.path();
  config.steps = steps;
  config.batch_size = batch_size;
  config.log_every = 1000;
  config.lr_warmup = 0;  // short runs need the full rate from the start
  return config;
}

torch::Tensor flat_parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> pieces;
  for (const auto& parameter : module.parameters()) pieces.push_back(parameter.detach().flatten());
  return torch::cat(pieces);
}

TEST_F(MultiRank, AllReduceMeanAndBroadcast) {
  torch::Tensor values = torch::full({5}, static_cast<float>(comm.rank() + 1));
  comm.all_reduce_mean(values);
  const float expected = (comm.size() + 1) / 2.0f;
  EXPECT_TRUE(values.equal(torch::full({5}, expected)));
  torch::Tensor sums = torch::full({3}, static_cast<double>(comm.rank()), torch::kFloat64);
  comm.all_reduce_sum(sums);
  EXPECT_DOUBLE_EQ(sums[0].item<double>(), comm.size() * (comm.size() - 1) / 2.0);
  torch::Tensor root = torch::full({4}, static_cast<float>(comm.rank()));
  comm.broadcast(root, 0);
  EXPECT_TRUE(root.equal(torch::zeros({4})));
}

TEST_F(MultiRank, AveragedGradientEqualsGradientOfTheConcatenatedBatch) {
  const std::int64_t per_rank = 6;
  torch::manual_seed(21);  // same model and same global batch on every rank
  ConvDae model;
  const torch::Tensor clean = torch::rand({per_rank * comm.size(), 1, 28, 28});
  const torch::Tensor noisy = clean + 0.5 * torch::randn_like(clean);

  FlatGradients gradients(*model);
  gradients.zero();
  const auto mine = torch::indexing::Slice(comm.rank() * per_rank, (comm.rank() + 1) * per_rank);
  torch::mse_loss(model->forward(noisy.index({mine})), clean.index({mine})).backward();
  comm.all_reduce_mean(gradients.buffer());
  const torch::Tensor averaged =
      gradients.buffer().narrow(0, 0, gradients.gradient_count()).clone();

  gradients.zero();
  torch::mse_loss(model->forward(noisy), clean).backward();
  const torch::Tensor whole = gradients.buffer().narrow(0, 0, gradients.gradient_count());

  const double relative = testing::relative_difference(averaged, whole);
  EXPECT_LT(relative, 1e-5);
  EXPECT_GT(whole.norm().item<double>(), 0.0);
}

TEST_F(MultiRank, ReplicasStayBitIdenticalAfterTwentySteps) {
  SharedDataFile data(comm, 400, 40);
  Config config = short_run(data, 20, 16);
  config.model.output_activation = Activation::kRelu;  // the seed's network, exactly
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());

  // Different initial weights on every rank: the broadcast must make them one model.
  torch::manual_seed(100 + comm.rank());
  ConvDae model(config.model.output_activation);
  broadcast_parameters(*model, comm);
  Trainer trainer(config, comm, shard, model.ptr());
  trainer.fit();
  EXPECT_EQ(trainer.state().step, 20);

  torch::Tensor mine = flat_parameters(*model);
  torch::Tensor rank0 = mine.clone();
  comm.broadcast(rank0, 0);
  EXPECT_TRUE(mine.equal(rank0)) << "parameters differ from rank 0's after 20 steps";
}

TEST_F(MultiRank, ShortRunHalvesTheLoss) {
  SharedDataFile data(comm, 600, 40);
  const Config config = short_run(data, 150, 25);
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  torch::manual_seed(7);
  const ModelPtr model = make_model(config.model);
  broadcast_parameters(*model, comm);
  Trainer trainer(config, comm, shard, model);
  const double first_loss = trainer.step();
  const FitResult fit = trainer.fit();
  EXPECT_LT(fit.final_loss, 0.5 * first_loss)
      << "first loss " << first_loss << ", final " << fit.final_loss;
}

TEST_F(MultiRank, WarmupRaisesTheLearningRateLinearlyToLr) {
  SharedDataFile data(comm, 100, 20);
  Config config = short_run(data, 10, 4);
  config.lr_warmup = 4;
  config.lr_schedule = LrSchedule::kConstant;  // the warm-up alone (the cosine: test_optim_options.cpp)
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  Trainer trainer(config, comm, shard, make_model(config.model));
  auto rate = [&trainer] {
    return static_cast<torch::optim::AdamOptions&>(trainer.optimizer().param_groups()[0].options())
        .lr();
  };
  for (const double expected : {0.0025, 0.005, 0.0075, 0.01, 0.01}) {
    trainer.step();
    EXPECT_DOUBLE_EQ(rate(), expected) << "after step " << trainer.state().step;
  }
}

// Clipping and Adam's epsilon act in the shared update, so dae's fused kernels and LibTorch's
// autograd take the same steps with them; and both change what is trained.
TEST_F(MultiRank, ClippingAndEpsAreHonouredAlikeByTheFusedAndTheLibTorchStep) {
  SharedDataFile data(comm, 200, 20);
  Config config = short_run(data, 8, 10);
  config.clip_grad_norm = 0.01;  // far below this model's first gradients: every step clips
  config.adam_eps = 1e-4;
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  auto train = [&](const Config& run) {
    torch::manual_seed(9);
    const ModelPtr model = make_model(run.model);
    broadcast_parameters(*model, comm);
    Trainer trainer(run, comm, shard, model);
    if (run.kernels == KernelChoice::kLibtorch) EXPECT_EQ(trainer.kernels(), "libtorch");
    if (run.kernels == KernelChoice::kAuto && kernels::best_isa() != kernels::Isa::kGeneric)
      EXPECT_EQ(trainer.kernels().rfind("fused", 0), 0u) << trainer.kernels();
    trainer.fit();
    EXPECT_DOUBLE_EQ(
        static_cast<torch::optim::AdamOptions&>(trainer.optimizer().param_groups()[0].options())
            .eps(),
        run.adam_eps);
    return flat_parameters(*model);
  };
  Config fused = config, libtorch = config;
  fused.kernels = KernelChoice::kAuto;  // dae's kernels where the CPU has AVX2, else LibTorch's again
  libtorch.kernels = KernelChoice::kLibtorch;
  const torch::Tensor with_fused = train(fused), with_libtorch = train(libtorch);
  EXPECT_LT(testing::relative_difference(with_fused, with_libtorch), 1e-4);
  Config unclipped = libtorch;
  unclipped.clip_grad_norm = 0;
  EXPECT_GT(testing::relative_difference(train(unclipped), with_libtorch), 1e-4);
  Config default_eps = libtorch;
  default_eps.adam_eps = 1e-8;
  EXPECT_GT(testing::relative_difference(train(default_eps), with_libtorch), 1e-4);
}

// recycle-dead-every: a channel killed before training is found dead on every rank's batch,
// given the same fresh weights on every rank by the fused and the LibTorch step, and trains
// from there; without recycling it stays exactly as it was killed.
TEST_F(MultiRank, RecyclingRevivesAKilledChannelAlikeOnEveryRank) {
  SharedDataFile data(comm, 200, 20);
  Config config = short_run(data, 20, 8);
  config.recycle_dead_every = 10;
  config.recycle_dead_until = 0.5;  // step 10 alone
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  torch::Tensor killed;  // encoder2's channel 5 as it was killed
  auto train = [&](const Config& run) {
    torch::manual_seed(9);
    const ModelPtr model = make_model(run.model);
    auto& conv = dynamic_cast<ConvDaeImpl&>(*model);
    {
      torch::NoGradGuard no_grad;  // inputs are >= 0: all-negative weights never fire
      conv.encoder2->weight[5].copy_(-conv.encoder2->weight[5].abs());
      conv.encoder2->bias[5].fill_(-1);
    }
    killed = conv.encoder2->weight[5].detach().clone();
    Trainer trainer(run, comm, shard, model);
    trainer.fit();
    torch::Tensor mine = flat_parameters(*model), rank0 = mine.clone();
    comm.broadcast(rank0, 0);
    EXPECT_TRUE(mine.equal(rank0)) << "replicas differ after recycling";
    return conv.encoder2->weight[5].detach().clone();
  };
  Config fused = config, libtorch = config, off = config;
  libtorch.kernels = KernelChoice::kLibtorch;
  off.recycle_dead_every = 0;
  const torch::Tensor with_fused = train(fused), with_libtorch = train(libtorch);
  EXPECT_FALSE(with_fused.equal(killed)) << "the killed channel was not recycled";
  EXPECT_GT(with_fused.max().item<float>(), 0.0f);  // fresh weights of both signs
  EXPECT_LT(testing::relative_difference(with_fused, with_libtorch), 1e-4);
  EXPECT_TRUE(train(off).equal(killed)) << "a dead channel moved without recycling";
}

TEST_F(MultiRank, SweepErrorGrowsWithNoiseAndIsTheSameOnEveryRank) {
  SharedDataFile data(comm, 600, 120);
  Config config = short_run(data, 100, 25);
  config.eval_noise = {0.0, 0.3, 0.6, 1.0};
  config.eval_batch = 50;  // several blocks, spread over the ranks
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  torch::manual_seed(8);
  const ModelPtr model = make_model(config.model);
  broadcast_parameters(*model, comm);
  Trainer trainer(config, comm, shard, model);
  trainer.fit();

  const auto sweep = evaluate_test_set(*model, comm, config).metrics;
  ASSERT_EQ(sweep.size(), 4u);
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    EXPECT_EQ(sweep[i].images, 120);
    if (i > 0) {
      EXPECT_GT(sweep[i].mse, sweep[i - 1].mse) << "noise " << sweep[i].noise;
      EXPECT_LT(sweep[i].psnr, sweep[i - 1].psnr) << "noise " << sweep[i].noise;
      EXPECT_LT(sweep[i].ssim, sweep[i - 1].ssim) << "noise " << sweep[i].noise;
    }
  }
  torch::Tensor mine = torch::tensor({sweep[0].mse, sweep[3].mse}, torch::kFloat64);
  torch::Tensor rank0 = mine.clone();
  comm.broadcast(rank0, 0);
  EXPECT_TRUE(mine.equal(rank0));
}

// Dead channels are counted at every noise level: an encoder1 channel with only negative weights
// and no bias never fires on clean images (pixels >= 0) but does on noisy ones, which have
// negative pixels. The fused forward's count and LibTorch's agree, level 0's total is the
// per-layer count's, and every rank gets the same numbers.
TEST_F(MultiRank, DeadChannelsAreCountedAtEveryNoiseLevel) {
  SharedDataFile data(comm, 100, 120);
  Config config = short_run(data, 1, 25);
  config.eval_noise = {0.0, 0.5};
  config.eval_batch = 50;  // several blocks, spread over the ranks
  std::vector<std::int64_t> counts;  // per kernel choice: clean, noisy
  for (const KernelChoice kernels : {KernelChoice::kAuto, KernelChoice::kLibtorch}) {
    config.kernels = kernels;
    torch::manual_seed(8);
    const ModelPtr model = make_model(config.model);
    auto& conv = dynamic_cast<ConvDaeImpl&>(*model);
    {
      torch::NoGradGuard no_grad;
      conv.encoder1->weight[5].copy_(-conv.encoder1->weight[5].abs());
      conv.encoder1->bias[5].fill_(0.0);
    }
    const TestSetResult result = evaluate_test_set(*model, comm, config);
    ASSERT_EQ(result.metrics.size(), 2u);
    ASSERT_FALSE(result.dead.empty());
    EXPECT_EQ(result.dead[0].layer, "encoder1");
    EXPECT_GE(result.dead[0].dead, 1);
    EXPECT_EQ(result.metrics[0].dead_channels, total_dead(result.dead));
    EXPECT_LT(result.metrics[1].dead_channels, result.metrics[0].dead_channels);
    counts.push_back(result.metrics[0].dead_channels);
    counts.push_back(result.metrics[1].dead_channels);
  }
  EXPECT_EQ(counts[0], counts[2]);  // fused (where the CPU has it) and LibTorch
  EXPECT_EQ(counts[1], counts[3]);
  torch::Tensor mine =
      torch::tensor(std::vector<double>(counts.begin(), counts.end()), torch::kFloat64);
  torch::Tensor rank0 = mine.clone();
  comm.broadcast(rank0, 0);
  EXPECT_TRUE(mine.equal(rank0));
}

// Every floating-point number of Adam's state, in parameter order.
torch::Tensor flat_adam_state(torch::nn::Module& module, torch::optim::Adam& optimizer) {
  std::vector<torch::Tensor> pieces;
  for (const auto& parameter : module.parameters()) {
    const auto& state = static_cast<const torch::optim::AdamParamState&>(
        *optimizer.state().at(parameter.unsafeGetTensorImpl()));
    pieces.push_back(state.exp_avg().flatten());
    pieces.push_back(state.exp_avg_sq().flatten());
    pieces.push_back(torch::full({1}, static_cast<float>(state.step())));
  }
  return torch::cat(pieces);
}

TEST_F(MultiRank, ResumeAtStepTenEndsBitIdenticalToTheUninterruptedRun) {
  SharedDataFile data(comm, 300, 20);
  Config config = short_run(data, 30, 8);
  config.checkpoint_every = 10;
  config.keep_checkpoints = 5;
  config.run_dir = data.run_dir("resume_run");
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  Checkpointer checkpointer(comm, config.run_dir, config.keep_checkpoints, "test");

  torch::manual_seed(5);
  ConvDae uninterrupted(config.model.output_activation);
  broadcast_parameters(*uninterrupted, comm);
  Trainer first(config, comm, shard, uninterrupted.ptr(), &checkpointer);
  first.fit();

  torch::manual_seed(6);  // a different start: everything must come from the checkpoint
  ConvDae resumed(config.model.output_activation);
  Trainer second(config, comm, shard, resumed.ptr(), &checkpointer);
  const std::string step10 = config.run_dir + "/checkpoints/ckpt_00000010.h5";
  const CheckpointData saved = load_checkpoint(step10, *resumed, second.optimizer());
  EXPECT_EQ(saved.step, 10);
  EXPECT_EQ(saved.world_size, comm.size());
  EXPECT_TRUE(second.resume_from(saved)) << "same world size and device: exact";
  second.fit();

  EXPECT_TRUE(flat_parameters(*resumed).equal(flat_parameters(*uninterrupted)));
  EXPECT_TRUE(flat_adam_state(*resumed, second.optimizer())
                  .equal(flat_adam_state(*uninterrupted, first.optimizer())));
  EXPECT_EQ(second.state().cursor.epoch, first.state().cursor.epoch);
  EXPECT_EQ(second.state().cursor.position, first.state().cursor.position);
}

TEST_F(MultiRank, Bf16AutocastStepIsCloseToFp32AndTrains) {
  SharedDataFile data(comm, 600, 40);
  Config fp32_config = short_run(data, 120, 25);
  fp32_config.kernels = KernelChoice::kLibtorch;  // the reference runs the same LibTorch kernels in fp32
  Config bf16_config = fp32_config;
  bf16_config.precision = Precision::kBf16;
  bf16_config.kernels = KernelChoice::kAuto;  // auto leaves bf16 to LibTorch
  const Shard shard = Shard::read_for_rank(fp32_config.data, "train", comm.rank(), comm.size());
  const auto [fp32_model, bf16_model] = testing::twin_models(fp32_config, torch::kCPU);
  Trainer fp32(fp32_config, comm, shard, fp32_model);
  Trainer bf16(bf16_config, comm, shard, bf16_model);
  EXPECT_EQ(bf16.kernels(), "libtorch, bf16 autocast");

  const double fp32_loss = fp32.step();
  const double bf16_loss = bf16.step();  // the same batch and noise: same seed and rank
  EXPECT_NEAR(bf16_loss, fp32_loss, 1e-2 * fp32_loss);
  for (std::size_t i = 0; i < fp32_model->parameters().size(); ++i) {
    const torch::Tensor expected = fp32_model->parameters()[i].grad();
    const torch::Tensor got = bf16_model->parameters()[i].grad();
    EXPECT_FALSE(got.equal(expected)) << "parameter " << i << ": no bf16 rounding at all";
    EXPECT_LT(testing::relative_difference(got, expected), 5e-2) << "parameter " << i;
  }
  const FitResult fit = bf16.fit();
  EXPECT_LT(fit.final_loss, 0.5 * bf16_loss) << "first loss " << bf16_loss;
}

// LibTorch's step is timed as its forward and its backward; the fused step, which runs both part
// by part, as one phase.
TEST_F(MultiRank, ProfileTimesEveryPhaseOfTheStep) {
  SharedDataFile data(comm, 100, 20);
  for (const KernelChoice kernels : {KernelChoice::kLibtorch, KernelChoice::kFused}) {
    Config config = short_run(data, 6, 8);
    config.profile = true;
    config.kernels = kernels;
    const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
    Trainer trainer(config, comm, shard, make_model(config.model));
    trainer.fit();
    std::vector<std::string> phases;
    for (const auto& [phase, seconds] : trainer.profile()) {
      phases.push_back(phase);
      EXPECT_GT(seconds, 0.0) << phase;
    }
    const std::vector<std::string> expected =
        kernels == KernelChoice::kFused
            ? std::vector<std::string>{"batch", "noise", "forward+backward", "all-reduce",
                                       "optimizer"}
            : std::vector<std::string>{"batch", "noise", "forward", "backward", "all-reduce",
                                       "optimizer"};
    EXPECT_EQ(phases, expected) << name_of(kernels);
  }
}

TEST_F(MultiRank, CudaGraphIsRefusedOffTheGpu) {
  SharedDataFile data(comm, 100, 20);
  Config config = short_run(data, 6, 8);
  config.cuda_graph = true;  // device auto: this model stays on the CPU
  const Shard shard = Shard::read_for_rank(config.data, "train", comm.rank(), comm.size());
  try {
    Trainer trainer(config, comm, shard, make_model(config.model));
    FAIL() << "cuda-graph accepted a CPU model";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("cuda-graph: needs a GPU"), std::string::npos)
        << error.what();
  }
}

TEST_F(MultiRank, OneRanksFailureIsReportedToAllRanks) {
  const int failing = comm.size() - 1;
  try {
    comm.run_collectively([&] {
      if (comm.rank() == failing) throw Error("shard.h5: read failed on purpose");
    });
    FAIL() << "every rank should have thrown";
  } catch (const ReportedError& error) {
    EXPECT_EQ(std::string(error.what()), "shard.h5: read failed on purpose");
  }
  // Afterwards the ranks still agree: the next collective completes.
  EXPECT_NO_THROW(comm.run_collectively([] {}));
}

}  // namespace
}  // namespace dae
