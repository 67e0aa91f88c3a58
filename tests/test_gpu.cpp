// GPU behaviour (run under mpirun with the other multi-rank tests): NCCL against MPI, a training
// step on the GPU against the same step on the CPU, checkpoints across devices. Each test skips
// where this build or node has no GPU, and NCCL's error path is checked everywhere.
#include <gtest/gtest.h>

#include "dae/checkpoint.hpp"
#include "dae/cuda_support.hpp"
#include "dae/device.hpp"
#include "dae/error.hpp"
#include "dae/model.hpp"
#include "dae/mpi.hpp"
#include "dae/mpi_communicator.hpp"
#include "dae/nccl_communicator.hpp"
#include "dae/trainer.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    // As dae_dist does with device = cuda: load CUDA support (the NCCL backend with it).
    gpus_ = cuda_built() ? usable_gpu_count("cuda", "auto") : 0;
  }
  // NCCL needs a GPU of its own per rank.
  bool nccl_possible() const { return nccl_built() && gpus_ >= world.local_size(); }
  torch::Device my_gpu() const {
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank() % gpus_));
  }
  MpiComm world{MPI_COMM_WORLD};
  int gpus_ = 0;
};

TEST_F(Gpu, NcclNeedsACudaDevice) {
  try {
    make_nccl_communicator(world, torch::kCPU);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("nccl"), std::string::npos) << error.what();
  }
}

TEST_F(Gpu, NcclAllReduceEqualsMpiAllReduce) {
  if (!all_ranks_agree(world, nccl_possible())) GTEST_SKIP() << "no GPU per rank for NCCL here";
  const auto nccl = make_nccl_communicator(world, my_gpu());
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
  if (!all_ranks_agree(world, gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  MpiCommunicator mpi(world);
  torch::Tensor values = torch::full({7}, static_cast<float>(world.rank() + 1)).to(my_gpu());
  mpi.all_reduce_mean(values);
  EXPECT_TRUE(values.is_cuda());
  EXPECT_TRUE(values.cpu().equal(torch::full({7}, (world.size() + 1) / 2.0f)));
}

TEST_F(Gpu, OneTrainingStepOnTheGpuMatchesTheCpu) {
  if (!all_ranks_agree(world, gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  torch::manual_seed(9);
  ConvDae cpu_model("none");
  ConvDae gpu_model("none");
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < cpu_model->parameters().size(); ++i)
      gpu_model->parameters()[i].copy_(cpu_model->parameters()[i]);
  }
  gpu_model->to(my_gpu());
  const torch::Tensor clean = torch::rand({16, 1, 28, 28});
  const torch::Tensor noisy = clean + 0.5 * torch::randn_like(clean);
  for (auto* model : {&cpu_model, &gpu_model}) {
    torch::optim::Adam adam((*model)->parameters(), torch::optim::AdamOptions(0.01));
    const torch::Device device = device_of(**model);
    torch::mse_loss((*model)->forward(noisy.to(device)), clean.to(device)).backward();
    adam.step();
  }
  for (std::size_t i = 0; i < cpu_model->parameters().size(); ++i) {
    const torch::Tensor a = cpu_model->parameters()[i], b = gpu_model->parameters()[i].cpu();
    EXPECT_LT(((a - b).norm() / a.norm()).item<double>(), 1e-4) << "parameter " << i;
  }
}

TEST_F(Gpu, CheckpointSavedOnGpuLoadsOnCpu) {
  if (!all_ranks_agree(world, gpus_ > 0)) GTEST_SKIP() << "no GPU here";
  std::unique_ptr<testing::TempDir> dir;
  std::string run_dir;
  if (world.rank() == 0) {
    dir = std::make_unique<testing::TempDir>();
    run_dir = dir->path().string();
  }
  broadcast_string(world, run_dir, 0);
  torch::manual_seed(3);
  ConvDae on_gpu("none");
  on_gpu->to(my_gpu());
  torch::optim::Adam adam(on_gpu->parameters());
  torch::mse_loss(on_gpu->forward(torch::rand({4, 1, 28, 28}).to(my_gpu())),
                  torch::zeros({4, 1, 28, 28}).to(my_gpu()))
      .backward();
  adam.step();
  TrainState state;
  state.step = 1;
  state.noise_state = torch::zeros({16}, torch::kUInt8);
  Checkpointer(world, run_dir, 1, "test").save(*on_gpu, adam, state);

  ConvDae on_cpu("none");
  torch::optim::Adam cpu_adam(on_cpu->parameters());
  load_checkpoint(run_dir + "/checkpoints/ckpt_00000001.h5", *on_cpu, cpu_adam);
  for (std::size_t i = 0; i < on_cpu->parameters().size(); ++i)
    EXPECT_TRUE(on_cpu->parameters()[i].equal(on_gpu->parameters()[i].cpu())) << i;
  MPI_Barrier(world.get());  // rank 0 removes the directory only after everyone has read it
}

}  // namespace
}  // namespace dae
