// GPU behaviour (run under mpirun with the other multi-rank tests): NCCL against MPI, a training
// step on the GPU against the same step on the CPU, CUDA-graph replays against eager steps, bf16
// autocast, CUDA-event profiling, short runs, checkpoints across devices. Each test skips where
// this build or node has no GPU, and NCCL's error path is checked everywhere.
#include <gtest/gtest.h>

#include <c10/core/impl/VirtualGuardImpl.h>

#include <chrono>
#include <cmath>
#include <set>
#include <thread>

#include "dae/train/checkpoint.hpp"
#include "dae/dist/cuda_plugin.hpp"
#include "dae/dist/device.hpp"
#include "dae/core/error.hpp"
#include "dae/train/fused_adam.hpp"
#include "dae/model/model.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/dist/nccl_communicator.hpp"
#include "dae/train/trainer.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::relative_difference;
using testing::twin_models;

// The NCCL watchdog's collective timeout in these tests: far above any collective's time here,
// so that only a real hang ends the test binary.
constexpr double kTimeoutS = 120;

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    // As dae_dist does with device = cuda: load CUDA support (the NCCL backend with it).
    gpus_ = cuda_built() ? usable_gpu_count(DeviceKind::kCuda, BackendKind::kAuto) : 0;
  }
  // NCCL needs a GPU of its own per rank.
  bool nccl_possible() const { return nccl_built() && gpus_ >= world.local_size(); }
  torch::Device my_gpu() const {
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank() % gpus_));
  }
  // NCCL where every rank has a GPU of its own, else the MPI backend on GPU tensors.
  std::unique_ptr<Communicator> gpu_communicator() const {
    if (control.all_agree(nccl_possible()))
      return make_nccl_communicator(world, my_gpu(), kTimeoutS);
    return std::make_unique<MpiCommunicator>(world);
  }
  MpiComm world{MPI_COMM_WORLD};
  MpiCommunicator control{world};  // the control plane's votes, whatever the test's data plane
  int gpus_ = 0;
};

// A short GPU run (the Trainer reads no data file: the shard comes from synthetic_shard).
Config gpu_run(long steps, long batch_size) {
  Config config;
  config.device = DeviceKind::kCuda;
  config.steps = steps;
  config.batch_size = batch_size;
  config.log_every = 1000;
  config.lr_warmup = 4;  // the rate changes over the first steps
  return config;
}

// `rows` synthetic images held in memory, as one rank's shard.
Shard synthetic_shard(std::uint32_t rows, std::uint32_t seed) {
  MnistSplit split = testing::synthetic_split(rows, seed);
  Shard shard;
  shard.total_rows = rows;
  const auto side = static_cast<std::int64_t>(kImageSide);
  shard.images = torch::from_blob(split.images.data(), {rows, side, side}, torch::kUInt8).clone();
  shard.labels = torch::from_blob(split.labels.data(), {rows}, torch::kUInt8).clone();
  return shard;
}

// A temporary directory made by rank 0, its path given to every rank; rank 0 removes it once
// every rank is done with it.
class SharedRunDir {
 public:
  explicit SharedRunDir(const Communicator& comm) : comm_(comm) {
    if (comm.rank() == 0) {
      dir_ = std::make_unique<testing::TempDir>();
      path_ = dir_->path().string();
    }
    comm.broadcast_text(path_, 0);
  }
  ~SharedRunDir() { comm_.barrier(); }
  SharedRunDir(const SharedRunDir&) = delete;
  SharedRunDir& operator=(const SharedRunDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  const Communicator& comm_;
  std::unique_ptr<testing::TempDir> dir_;
  std::string path_;
};

// cuDNN's deterministic algorithms for the scope: two runs of the same step then agree exactly.
class DeterministicCudnn {
 public:
  DeterministicCudnn()
      : deterministic_(at::globalContext().deterministicCuDNN()),
        benchmark_(at::globalContext().benchmarkCuDNN()) {
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setBenchmarkCuDNN(false);
  }
  ~DeterministicCudnn() {
    at::globalContext().setDeterministicCuDNN(deterministic_);
    at::globalContext().setBenchmarkCuDNN(benchmark_);
  }

 private:
  bool deterministic_, benchmark_;
};

TEST_F(Gpu, NcclNeedsACudaDevice) {
  try {
    make_nccl_communicator(world, torch::kCPU, kTimeoutS);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("nccl"), std::string::npos) << error.what();
  }
}

TEST_F(Gpu, VisibleGpusAreNamedByDistinctIdentities) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const std::vector<std::string> ids = visible_gpus(DeviceKind::kCuda, BackendKind::kAuto);
  ASSERT_EQ(static_cast<int>(ids.size()), gpus_);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  for (const auto& id : ids)
    EXPECT_TRUE(id.rfind("GPU-", 0) == 0 || id.rfind("MIG-", 0) == 0 || id.rfind("pci-", 0) == 0)
        << id;
  // The node's plan from the real identities: where every rank sees all GPUs and there are
  // enough, every rank takes another one.
  const auto node = gather_node_gpus(world, ids);
  const GpuAssignment mine = assign_gpu(node, world.local_rank());
  EXPECT_EQ(mine.gpu, ids[static_cast<std::size_t>(mine.index)]);
  if (gpus_ >= world.local_size()) {
    EXPECT_TRUE(mine.sharing_with.empty()) << mine.layout;
  }
}

TEST_F(Gpu, SelectGpuMakesItTheProcesssCurrentDevice) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const c10::impl::VirtualGuardImpl cuda(c10::DeviceType::CUDA);
  for (int index = gpus_ - 1; index >= 0; --index) {
    select_gpu(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)));
    EXPECT_EQ(cuda.getDevice().index(), index);
  }
  select_gpu(my_gpu());
}

// A rank whose NCCL communicator is destroyed by an exception's unwinding must abort it, not
// wait in ncclCommDestroy (collective) for peers that are elsewhere: here rank 1 unwinds while
// the others wait in MPI_Barrier for it; destroying, it would never reach the barrier.
TEST_F(Gpu, NcclCommunicatorIsAbortedNotDestroyedWhileUnwinding) {
  if (world.size() < 2 || !control.all_agree(nccl_possible()))
    GTEST_SKIP() << "needs two ranks with a GPU each";
  const auto start = std::chrono::steady_clock::now();
  auto comm = make_nccl_communicator(world, my_gpu(), kTimeoutS);
  torch::Tensor values = torch::ones({1024}, torch::TensorOptions().device(my_gpu()));
  comm->all_reduce_sum(values);
  EXPECT_EQ(values.cpu()[0].item<float>(), static_cast<float>(world.size()));
  auto fail_holding = [&] {
    try {
      const auto held = std::move(comm);
      throw Error("a failure on this rank only");
    } catch (const Error&) {
    }
  };
  if (world.rank() == 1) fail_holding();
  control.barrier();
  if (world.rank() != 1) fail_holding();  // its peer is gone: this one aborts too
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30);
}

// The watchdog polls while collectives are pending and after they are done: a healthy
// communicator with a short timeout is left alone (a false alarm would end this process).
TEST_F(Gpu, NcclWatchdogLeavesAHealthyCommunicatorAlone) {
  if (!control.all_agree(nccl_possible())) GTEST_SKIP() << "no GPU per rank for NCCL here";
  const auto comm = make_nccl_communicator(world, my_gpu(), 2);
  torch::Tensor values = torch::ones({26450}, torch::TensorOptions().device(my_gpu()));
  for (int i = 0; i < 50; ++i) comm->all_reduce_mean(values);
  EXPECT_TRUE(values.cpu().equal(torch::ones({26450})));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // past the timeout, nothing pending
  comm->barrier();
}

TEST_F(Gpu, NcclAllReduceEqualsMpiAllReduce) {
  if (!control.all_agree(nccl_possible())) GTEST_SKIP() << "no GPU per rank for NCCL here";
  const auto nccl = make_nccl_communicator(world, my_gpu(), kTimeoutS);
  MpiCommunicator mpi(world);
  torch::manual_seed(100 + world.rank());
  const torch::Tensor values = torch::randn({26450});
  torch::Tensor by_mpi = values.clone(), by_nccl = values.to(my_gpu());
  mpi.all_reduce_mean(by_mpi);
  nccl->all_reduce_mean(by_nccl);
  EXPECT_TRUE(torch::allclose(by_nccl.cpu(), by_mpi, 1e-6, 1e-6));
  torch::Tensor root = values.to(my_gpu());
  nccl->broadcast(root, 0);
  torch::Tensor root_mpi = values.clone();
  mpi.broadcast(root_mpi, 0);
  EXPECT_TRUE(root.cpu().equal(root_mpi));
}

TEST_F(Gpu, MpiBackendStagesGpuTensorsThroughTheHost) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  MpiCommunicator mpi(world);
  torch::Tensor values = torch::full({7}, static_cast<float>(world.rank() + 1)).to(my_gpu());
  mpi.all_reduce_mean(values);
  EXPECT_TRUE(values.is_cuda());
  EXPECT_TRUE(values.cpu().equal(torch::full({7}, (world.size() + 1) / 2.0f)));
}

TEST_F(Gpu, OneTrainingStepOnTheGpuMatchesTheCpu) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  torch::manual_seed(9);
  ConvDae cpu_model(Activation::kNone);
  ConvDae gpu_model(Activation::kNone);
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < cpu_model->parameters().size(); ++i)
      gpu_model->parameters()[i].copy_(cpu_model->parameters()[i]);
  }
  gpu_model->to(my_gpu());
  const torch::Tensor clean = torch::rand({16, 1, 28, 28});
  const torch::Tensor noisy = clean + 0.5 * torch::randn_like(clean);
  for (auto* model : {&cpu_model, &gpu_model}) {  // the trainer's update: FusedAdam
    torch::optim::Adam adam((*model)->parameters(), torch::optim::AdamOptions(0.01));
    FusedAdam fused(adam);
    const torch::Device device = device_of(**model);
    torch::mse_loss((*model)->forward(noisy.to(device)), clean.to(device)).backward();
    fused.prepare(1, 0.01);
    fused.update();
  }
  for (std::size_t i = 0; i < cpu_model->parameters().size(); ++i) {
    const torch::Tensor a = cpu_model->parameters()[i], b = gpu_model->parameters()[i].cpu();
    EXPECT_LT(relative_difference(b, a), 1e-4) << "parameter " << i;
  }
}

TEST_F(Gpu, CudaGraphReplaysGiveTheEagerSteps) {
  if (!control.all_agree(nccl_possible())) GTEST_SKIP() << "CUDA graphs need NCCL here";
  const auto comm = make_nccl_communicator(world, my_gpu(), kTimeoutS);
  const DeterministicCudnn deterministic;
  Config eager_config = gpu_run(10, 64);
  eager_config.lr_warmup = 20;  // the rate still changes at every replay
  Config graph_config = eager_config;
  graph_config.cuda_graph = true;
  const Shard shard = synthetic_shard(640, 3);
  const auto [eager_model, graph_model] = twin_models(eager_config, my_gpu());
  Trainer eager(eager_config, *comm, shard, eager_model);
  Trainer graph(graph_config, *comm, shard, graph_model);
  EXPECT_EQ(graph.kernels(), "libtorch, CUDA graph");
  // Steps 1-3 run eagerly on the graph's stream, step 4 is captured and replayed, 5-10 replayed.
  for (int step = 1; step <= 10; ++step) {
    const double expected = eager.step();
    const double got = graph.step();
    EXPECT_NEAR(got, expected, 1e-6 * expected) << "loss at step " << step;
  }
  for (std::size_t i = 0; i < eager_model->parameters().size(); ++i)
    EXPECT_LT(relative_difference(graph_model->parameters()[i], eager_model->parameters()[i]),
              1e-6)
        << "parameter " << i;
}

TEST_F(Gpu, ShortRunsHalveTheLossEagerAndAsACudaGraph) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const auto comm = gpu_communicator();
  const Shard shard = synthetic_shard(600, 4);
  for (const bool use_graph : {false, true}) {
    if (use_graph && std::string(comm->name()) != "nccl") continue;
    Config config = gpu_run(150, 32);
    config.lr_warmup = 0;
    config.cuda_graph = use_graph;
    const ModelPtr model = twin_models(config, my_gpu()).first;
    broadcast_parameters(*model, *comm);
    Trainer trainer(config, *comm, shard, model);
    const double first_loss = trainer.step();
    const FitResult fit = trainer.fit();
    EXPECT_LT(fit.final_loss, 0.5 * first_loss)
        << (use_graph ? "CUDA graph" : "eager") << ": first loss " << first_loss;
  }
}

TEST_F(Gpu, Bf16AutocastStepOnTheGpuIsCloseToFp32) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const auto comm = gpu_communicator();
  const Config fp32_config = gpu_run(1, 32);
  Config bf16_config = fp32_config;
  bf16_config.precision = Precision::kBf16;
  const Shard shard = synthetic_shard(64, 5);
  const auto [fp32_model, bf16_model] = twin_models(fp32_config, my_gpu());
  Trainer fp32(fp32_config, *comm, shard, fp32_model);
  Trainer bf16(bf16_config, *comm, shard, bf16_model);
  const double fp32_loss = fp32.step();
  const double bf16_loss = bf16.step();
  EXPECT_NEAR(bf16_loss, fp32_loss, 1e-2 * fp32_loss);
  for (std::size_t i = 0; i < fp32_model->parameters().size(); ++i) {
    const torch::Tensor expected = fp32_model->parameters()[i].grad();
    const torch::Tensor got = bf16_model->parameters()[i].grad();
    EXPECT_FALSE(got.equal(expected)) << "parameter " << i << ": no bf16 rounding at all";
    EXPECT_LT(relative_difference(got, expected), 5e-2) << "parameter " << i;
  }
}

TEST_F(Gpu, ProfileTimesThePhasesWithCudaEvents) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const auto comm = gpu_communicator();
  const Shard shard = synthetic_shard(256, 6);
  auto phases_of = [&](bool use_graph) {
    Config config = gpu_run(8, 32);
    config.profile = true;
    config.cuda_graph = use_graph;
    Trainer trainer(config, *comm, shard, twin_models(config, my_gpu()).first);
    trainer.fit();
    std::vector<std::string> phases;
    for (const auto& [phase, seconds] : trainer.profile()) {
      phases.push_back(phase);
      EXPECT_GT(seconds, 0.0) << phase;
    }
    return phases;
  };
  EXPECT_EQ(phases_of(false), (std::vector<std::string>{"batch", "noise", "forward", "backward",
                                                        "all-reduce", "optimizer"}));
  if (std::string(comm->name()) == "nccl") {
    EXPECT_EQ(phases_of(true), (std::vector<std::string>{"batch", "noise", "step (CUDA graph)"}));
  }
}

TEST_F(Gpu, CheckpointSavedOnGpuLoadsOnCpu) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const SharedRunDir shared(control);
  const std::string& run_dir = shared.path();
  torch::manual_seed(3);
  ConvDae on_gpu(Activation::kNone);
  on_gpu->to(my_gpu());
  torch::optim::Adam adam(on_gpu->parameters());
  torch::mse_loss(on_gpu->forward(torch::rand({4, 1, 28, 28}).to(my_gpu())),
                  torch::zeros({4, 1, 28, 28}).to(my_gpu()))
      .backward();
  adam.step();
  TrainState state;
  state.step = 1;
  state.noise_state = torch::zeros({16}, torch::kUInt8);
  Checkpointer(control, run_dir, 1, "test").save(*on_gpu, adam, state);

  ConvDae on_cpu(Activation::kNone);
  torch::optim::Adam cpu_adam(on_cpu->parameters());
  load_checkpoint(run_dir + "/checkpoints/ckpt_00000001.h5", *on_cpu, cpu_adam);
  for (std::size_t i = 0; i < on_cpu->parameters().size(); ++i)
    EXPECT_TRUE(on_cpu->parameters()[i].equal(on_gpu->parameters()[i].cpu())) << i;
}

TEST_F(Gpu, CheckpointSavedOnCpuResumesOnTheGpu) {
  if (!control.all_agree(gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  const SharedRunDir shared(control);
  const std::string& run_dir = shared.path();
  const Shard shard = synthetic_shard(128, 7);
  Config cpu_config = gpu_run(3, 16);
  cpu_config.device = DeviceKind::kCpu;
  const ModelPtr cpu_model = twin_models(cpu_config, torch::kCPU).first;
  MpiCommunicator cpu_comm(world);
  Checkpointer checkpointer(control, run_dir, 1, "test");
  Trainer on_cpu(cpu_config, cpu_comm, shard, cpu_model, &checkpointer);
  on_cpu.fit();  // writes the step-3 checkpoint at the end

  const Config gpu_config = gpu_run(4, 16);
  torch::manual_seed(11);  // other initial weights: everything must come from the checkpoint
  const ModelPtr gpu_model = make_model(gpu_config.model);
  gpu_model->to(my_gpu());
  const auto gpu_comm = gpu_communicator();
  Trainer on_gpu(gpu_config, *gpu_comm, shard, gpu_model);
  const CheckpointData saved =
      load_checkpoint(run_dir + "/checkpoints/ckpt_00000003.h5", *gpu_model, on_gpu.optimizer());
  EXPECT_FALSE(on_gpu.resume_from(saved)) << "a CPU noise stream cannot continue on the GPU";
  for (std::size_t i = 0; i < gpu_model->parameters().size(); ++i) {
    const torch::Tensor parameter = gpu_model->parameters()[i];
    EXPECT_TRUE(parameter.is_cuda());
    EXPECT_TRUE(parameter.cpu().equal(cpu_model->parameters()[i])) << "parameter " << i;
    const auto& moments = static_cast<const torch::optim::AdamParamState&>(
        *on_gpu.optimizer().state().at(parameter.unsafeGetTensorImpl()));
    EXPECT_TRUE(moments.exp_avg().is_cuda());
    EXPECT_EQ(moments.step(), 3);
  }
  const double loss = on_gpu.step();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(on_gpu.state().step, 4);
}

}  // namespace
}  // namespace dae
