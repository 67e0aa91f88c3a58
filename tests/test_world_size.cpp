// World-size invariant training (run under mpirun -np 2 and -np 4 with the other multi-rank
// tests): the same global batch and seed on 1, 2, 3 and 4 ranks (the job's first ranks as a
// communicator of their own) end with the same bits in every parameter and Adam moment, with
// the fused and the LibTorch step; a run checkpointed on 2 ranks and resumed on all of them ends
// where the uninterrupted 1-rank run does; and the same on GPUs with NCCL (skipped without).
#include <gtest/gtest.h>

#include <functional>

#include "dae/train/checkpoint.hpp"
#include "dae/dist/cuda_plugin.hpp"
#include "dae/dist/device.hpp"
#include "dae/train/fused_adam.hpp"
#include "dae/model/model.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/dist/nccl_communicator.hpp"
#include "dae/train/trainer.hpp"
#include "dae/data/virtual_shards.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

constexpr std::uint32_t kTrainRows = 400;
constexpr long kSteps = 200;

// V = 12 divides 1, 2, 3 and 4 ranks; 4 images per virtual shard and step.
Config invariant_run(const std::string& kernels) {
  Config config;
  config.steps = kSteps;
  config.global_batch_size = 48;
  config.virtual_shards = 12;
  config.kernels = parse_enum<KernelChoice>("kernels", kernels);
  config.lr_warmup = 20;  // the rate changes over the first steps
  // The resume test's first part ends at step 120 by its own `steps`, which a cosine over
  // `steps` would turn into another schedule: a constant rate after the warm-up.
  config.lr_schedule = LrSchedule::kConstant;
  // One recycling, at step 30 (<= 0.25 of both 120 and 200 steps), of the channel train() kills:
  // what is dead is found on every virtual shard's batch, whatever the number of ranks.
  config.recycle_dead_every = 30;
  config.recycle_dead_until = 0.25;
  config.log_every = 1000;
  config.checkpoint_every = 0;
  return config;
}

// The whole training split, the same on every rank (a fixed seed), in memory.
const MnistSplit& training_split() {
  static const MnistSplit split = testing::synthetic_split(kTrainRows, 31);
  return split;
}

// This rank's virtual shards' rows of training_split(), as read_virtual_shards returns them.
Shard own_rows(const VirtualShardLayout& layout) {
  const auto [first, count] = layout.rank_rows();
  const auto side = static_cast<std::int64_t>(kImageSide);
  const auto all = static_cast<std::int64_t>(kTrainRows);
  Shard shard;
  shard.split = "train";
  shard.total_rows = kTrainRows;
  shard.first_row = first;
  auto* images = const_cast<std::uint8_t*>(training_split().images.data());
  shard.images = torch::from_blob(images, {all, side, side}, torch::kUInt8)
                     .narrow(0, static_cast<std::int64_t>(first), static_cast<std::int64_t>(count))
                     .clone();
  shard.labels = torch::zeros({static_cast<std::int64_t>(count)}, torch::kUInt8);
  return shard;
}

// Runs `work` on a communicator of the job's first `ranks` ranks while the others wait.
void on_first_ranks(int ranks, const std::function<void(const MpiComm&)>& work) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm part = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank < ranks ? 0 : MPI_UNDEFINED, rank, &part);
  if (part != MPI_COMM_NULL) {
    {
      const MpiComm comm(part);
      work(comm);
    }
    MPI_Comm_free(&part);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// What must come out the same: every parameter, and Adam's two moments, flattened (on the CPU).
struct Trained {
  torch::Tensor parameters;
  torch::Tensor moments;
  double loss = 0;
};

Trained snapshot(torch::nn::Module& model, torch::optim::Adam& optimizer, double loss) {
  std::vector<torch::Tensor> parameters, moments;
  for (const auto& parameter : model.parameters()) {
    parameters.push_back(parameter.detach().flatten().cpu());
    const auto& adam = adam_state_of(optimizer, parameter);
    moments.push_back(adam.exp_avg().flatten().cpu());
    moments.push_back(adam.exp_avg_sq().flatten().cpu());
  }
  return {torch::cat(parameters), torch::cat(moments), loss};
}

// Trains `config` on `part` from the same initial weights at every world size; with `resume`,
// continues that checkpoint first. Checkpoints (with a run dir) at config.steps.
Trained train(Communicator& comm, Config config,
              const std::string& run_dir = "", const std::string& resume = "",
              torch::Device device = torch::kCPU) {
  config.batch_size = per_rank_batch(config, comm.size());
  const VirtualShardLayout layout =
      VirtualShardLayout::make(kTrainRows, config, comm.rank(), comm.size());
  torch::manual_seed(7);
  const ModelPtr model = make_model(config.model);
  if (resume.empty()) {  // encoder2's channel 3 dead from the start (its inputs are >= 0)
    torch::NoGradGuard no_grad;
    auto& conv = dynamic_cast<ConvDaeImpl&>(*model);
    conv.encoder2->weight[3].copy_(-conv.encoder2->weight[3].abs());
    conv.encoder2->bias[3].fill_(-1);
  }
  model->to(device);
  broadcast_parameters(*model, comm);
  std::unique_ptr<Checkpointer> checkpointer;
  if (!run_dir.empty())
    checkpointer = std::make_unique<Checkpointer>(comm, run_dir, 3, describe_config(config));
  Trainer trainer(config, comm, own_rows(layout), model, checkpointer.get());
  if (!resume.empty()) {
    const CheckpointData saved = load_checkpoint(resume, *model, trainer.optimizer());
    EXPECT_TRUE(trainer.resume_from(saved));
  }
  const FitResult fit = trainer.fit();
  EXPECT_EQ(trainer.state().step, config.steps);
  return snapshot(*model, trainer.optimizer(), fit.final_loss);
}

void expect_same_bits(const Trained& got, const Trained& expected, const std::string& what) {
  EXPECT_TRUE(got.parameters.equal(expected.parameters))
      << what << ": parameters differ (max |difference| "
      << (got.parameters - expected.parameters).abs().max().item<float>() << ")";
  EXPECT_TRUE(got.moments.equal(expected.moments)) << what << ": Adam moments differ";
  EXPECT_EQ(got.loss, expected.loss) << what << ": final loss differs";
}

class WorldSize : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { torch::set_num_threads(1); }  // the same kernels' threads everywhere
  MpiComm world{MPI_COMM_WORLD};
};

// Every world size this job can form that divides V = 12: 1, 2 (and 3, 4 under -np 4).
TEST_P(WorldSize, SameBitsOnOneToFourRanks) {
  const Config config = invariant_run(GetParam());
  Trained one;
  on_first_ranks(1, [&](const MpiComm& part) {
    MpiCommunicator comm(part);
    one = train(comm, config);
  });
  for (int ranks = 2; ranks <= world.size(); ++ranks)
    on_first_ranks(ranks, [&](const MpiComm& part) {
      MpiCommunicator comm(part);
      const Trained got = train(comm, config);
      if (part.rank() == 0)
        expect_same_bits(
            got, one,
            std::to_string(ranks) + " ranks against 1 after " + std::to_string(kSteps) + " steps");
      // ...and every rank of the run holds rank 0's model.
      torch::Tensor rank0 = got.parameters.clone();
      comm.broadcast(rank0, 0);
      EXPECT_TRUE(got.parameters.equal(rank0));
    });
}

// Checkpointed at step 120 on 2 ranks, resumed on all of the job's: the uninterrupted 1-rank
// run's bits.
TEST_P(WorldSize, StoppedOnTwoRanksResumedOnAllEndsAsOneRank) {
  const Config config = invariant_run(GetParam());
  std::string run_dir;
  std::unique_ptr<testing::TempDir> dir;
  if (world.rank() == 0) {
    dir = std::make_unique<testing::TempDir>();
    run_dir = dir->path().string();
  }
  MpiCommunicator(world).broadcast_text(run_dir, 0);
  Trained one;
  on_first_ranks(1, [&](const MpiComm& part) {
    MpiCommunicator comm(part);
    one = train(comm, config);
  });
  Config first_part = config;
  first_part.steps = 120;
  on_first_ranks(2, [&](const MpiComm& part) {
    MpiCommunicator comm(part);
    train(comm, first_part, run_dir);
  });
  on_first_ranks(world.size(), [&](const MpiComm& part) {
    MpiCommunicator comm(part);
    const Trained got =
        train(comm, config, run_dir + "/resumed", run_dir + "/checkpoints/ckpt_00000120.h5");
    if (part.rank() == 0)
      expect_same_bits(
          got, one,
          "2 ranks to step 120, then " + std::to_string(part.size()) + " ranks, against 1 rank");
  });
}

INSTANTIATE_TEST_SUITE_P(Kernels, WorldSize, ::testing::Values("fused", "libtorch"));

// The same on GPUs: NCCL only moves the bytes (ncclAllGather), so its algorithm choice cannot
// change a bit. cuDNN's deterministic algorithms, so that each shard's gradient is a function
// of its batch alone.
TEST(WorldSizeGpu, SameBitsWithNcclOnOneAndAllRanks) {
  torch::set_num_threads(1);
  const MpiComm world(MPI_COMM_WORLD);
  const int gpus = cuda_built() ? usable_gpu_count(DeviceKind::kCuda, BackendKind::kAuto) : 0;
  if (!MpiCommunicator(world).all_agree(nccl_built() && gpus >= world.local_size()))
    GTEST_SKIP() << "no GPU per rank for NCCL here";
  const bool deterministic = at::globalContext().deterministicCuDNN();
  const bool benchmark = at::globalContext().benchmarkCuDNN();
  at::globalContext().setDeterministicCuDNN(true);
  at::globalContext().setBenchmarkCuDNN(false);
  Config config = invariant_run("libtorch");
  config.device = DeviceKind::kCuda;
  config.virtual_shards = 8;
  config.global_batch_size = 64;
  const auto run_on = [&](const MpiComm& part) {
    const torch::Device gpu(torch::kCUDA, static_cast<c10::DeviceIndex>(part.local_rank() % gpus));
    select_gpu(gpu);  // before the communicator, as dae_dist does
    const auto comm = make_nccl_communicator(part, gpu, 120);
    return train(*comm, config, "", "", gpu);
  };
  Trained one;
  on_first_ranks(1, [&](const MpiComm& part) { one = run_on(part); });
  if (config.virtual_shards % world.size() == 0)
    on_first_ranks(world.size(), [&](const MpiComm& part) {
      const Trained got = run_on(part);
      if (part.rank() == 0)
        expect_same_bits(got, one, std::to_string(part.size()) + " GPUs (NCCL) against 1");
    });
  at::globalContext().setDeterministicCuDNN(deterministic);
  at::globalContext().setBenchmarkCuDNN(benchmark);
}

}  // namespace
}  // namespace dae
