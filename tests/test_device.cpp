// Device and backend selection, and the GPU code paths' errors on a machine without a GPU.
#include <gtest/gtest.h>

#include <fstream>

#include "dae/cuda_support.hpp"
#include "dae/device.hpp"
#include "dae/error.hpp"

namespace dae {
namespace {

DeviceFacts node(int gpus, int local_rank, int local_size, bool cuda = true, bool nccl = true) {
  return {cuda, nccl, gpus, local_rank, local_size};
}

std::string plan_error(const std::string& device, const std::string& backend, bool share,
                       const DeviceFacts& facts) {
  try {
    plan_device(device, backend, share, facts);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(PlanDevice, AutoPicksCudaAndNcclOnAGpuNodeAndTheLocalRanksGpu) {
  const DevicePlan plan = plan_device("auto", "auto", false, node(4, 2, 4));
  EXPECT_EQ(plan.device, torch::Device(torch::kCUDA, 2));
  EXPECT_EQ(plan.backend, "nccl");
  EXPECT_NE(plan.reason.find("4 GPUs on the node"), std::string::npos) << plan.reason;
}

TEST(PlanDevice, AutoFallsBackToCpuAndMpi) {
  for (const DeviceFacts& facts : {node(0, 0, 2), node(4, 0, 2, /*cuda=*/false)}) {
    const DevicePlan plan = plan_device("auto", "auto", false, facts);
    EXPECT_TRUE(plan.device.is_cpu());
    EXPECT_EQ(plan.backend, "mpi");
    EXPECT_FALSE(plan.reason.empty());
  }
  // CUDA without NCCL: GPUs with the MPI backend.
  const DevicePlan no_nccl = plan_device("auto", "auto", false, node(2, 1, 2, true, false));
  EXPECT_TRUE(no_nccl.device.is_cuda());
  EXPECT_EQ(no_nccl.backend, "mpi");
}

TEST(PlanDevice, ImpossibleRequestsAreOneLineErrors) {
  EXPECT_NE(plan_error("cuda", "auto", false, node(0, 0, 1)).find("no CUDA device is visible"),
            std::string::npos);
  EXPECT_NE(plan_error("cuda", "auto", false, node(1, 0, 1, false)).find("built without CUDA"),
            std::string::npos);
  EXPECT_NE(plan_error("cuda", "nccl", false, node(1, 0, 1, true, false))
                .find("built without NCCL"),
            std::string::npos);
  EXPECT_NE(plan_error("cpu", "nccl", false, node(1, 0, 1)).find("nccl needs device = cuda"),
            std::string::npos);
  EXPECT_NE(plan_error("cuda", "auto", false, node(1, 0, 4)).find("4 ranks on this node but only 1"),
            std::string::npos);
  EXPECT_NE(plan_error("tpu", "auto", false, node(1, 0, 1)).find("device: 'tpu'"),
            std::string::npos);
  for (const auto& message : {plan_error("cuda", "auto", false, node(0, 0, 1)),
                              plan_error("cpu", "nccl", false, node(1, 0, 1))})
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(PlanDevice, SharingGpusMeansTheMpiBackend) {
  const DevicePlan shared = plan_device("cuda", "auto", true, node(1, 3, 4));
  EXPECT_EQ(shared.device, torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(shared.backend, "mpi");
  EXPECT_NE(plan_error("cuda", "nccl", true, node(1, 3, 4)).find("cannot run two ranks on one GPU"),
            std::string::npos);
}

}  // namespace
}  // namespace dae

namespace dae {
namespace {

bool libtorch_cuda_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("libtorch_cuda") != std::string::npos) return true;
  return false;
}

// One test, in this order: nothing in this process may have loaded CUDA support before it.
TEST(CudaSupport, LoadedOnlyWhereARunMayUseAGpu) {
  ASSERT_FALSE(libtorch_cuda_mapped()) << "dae_core links LibTorch's CUDA library";
  EXPECT_EQ(usable_gpu_count("cpu", "auto"), 0);
  EXPECT_FALSE(libtorch_cuda_mapped()) << "device = cpu loaded CUDA support";
  if (!nvidia_devices_present()) {
    EXPECT_EQ(usable_gpu_count("auto", "auto"), 0);
    EXPECT_FALSE(libtorch_cuda_mapped()) << "auto loaded CUDA support on a node without GPUs";
  }
  if (!cuda_built()) {
    EXPECT_NE(load_cuda_support(), "");
    return;
  }
  EXPECT_EQ(load_cuda_support(), "");
  EXPECT_TRUE(libtorch_cuda_mapped());
  EXPECT_EQ(load_cuda_support(), "");  // a second call is harmless
}

}  // namespace
}  // namespace dae
