// Device and backend selection, and the GPU code paths' errors on a machine without a GPU.
#include <gtest/gtest.h>

#include <fstream>

#include "dae/cuda_support.hpp"
#include "dae/device.hpp"
#include "dae/error.hpp"
#include "dae/teardown.hpp"

namespace dae {
namespace {

using Lists = std::vector<std::vector<std::string>>;

// Facts for local rank `local_rank` of a node whose ranks see `visible`; every rank of the job
// sees a GPU exactly when every rank of this node does, and shares one when one here does.
DeviceFacts node(const Lists& visible, int local_rank, bool cuda = true, bool nccl = true) {
  DeviceFacts facts;
  facts.cuda_built = cuda;
  facts.nccl_built = nccl;
  facts.gpus_visible = static_cast<int>(visible[static_cast<std::size_t>(local_rank)].size());
  facts.assignment = assign_gpu(visible, local_rank);
  facts.every_rank_has_gpu = true;
  for (int rank = 0; rank < static_cast<int>(visible.size()); ++rank) {
    facts.every_rank_has_gpu = facts.every_rank_has_gpu && !visible[rank].empty();
    facts.gpu_shared_in_job =
        facts.gpu_shared_in_job || !assign_gpu(visible, rank).sharing_with.empty();
  }
  facts.nvidia_device_files = true;
  facts.local_rank = local_rank;
  facts.local_size = static_cast<int>(visible.size());
  return facts;
}

// `ranks` ranks that all see the same `gpus` GPUs (--gres=gpu:N, no binding).
Lists per_node(int ranks, int gpus) {
  std::vector<std::string> all;
  for (int gpu = 0; gpu < gpus; ++gpu) all.push_back("GPU-" + std::to_string(gpu));
  return Lists(static_cast<std::size_t>(ranks), all);
}

// Each rank sees only its own GPU (--gpus-per-task=1, --gpu-bind=per_task): cuda:0 everywhere.
Lists per_task(int ranks) {
  Lists lists;
  for (int rank = 0; rank < ranks; ++rank) lists.push_back({"GPU-" + std::to_string(rank)});
  return lists;
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

TEST(AssignGpu, EveryRankSeeingAllGpusTakesLocalRankModuloTheirNumber) {
  const Lists visible = per_node(4, 4);
  for (int rank = 0; rank < 4; ++rank) {
    const GpuAssignment gpu = assign_gpu(visible, rank);
    EXPECT_EQ(gpu.index, rank);
    EXPECT_EQ(gpu.gpu, "GPU-" + std::to_string(rank));
    EXPECT_TRUE(gpu.sharing_with.empty());
    EXPECT_EQ(gpu.layout, "every rank on the node sees its 4 GPUs");
  }
  // Four ranks on two GPUs: 0 and 2 share GPU-0, 1 and 3 share GPU-1.
  const Lists two = per_node(4, 2);
  EXPECT_EQ(assign_gpu(two, 3).index, 1);
  EXPECT_EQ(assign_gpu(two, 2).sharing_with, std::vector<int>{0});
  EXPECT_EQ(assign_gpu(two, 1).sharing_with, std::vector<int>{3});
}

TEST(AssignGpu, OneGpuPerTaskIsCudaZeroEverywhereAndNotShared) {
  const Lists visible = per_task(4);
  for (int rank = 0; rank < 4; ++rank) {
    const GpuAssignment gpu = assign_gpu(visible, rank);
    EXPECT_EQ(gpu.index, 0);
    EXPECT_EQ(gpu.gpu, "GPU-" + std::to_string(rank));
    EXPECT_TRUE(gpu.sharing_with.empty()) << rank;
    EXPECT_EQ(gpu.layout, "each rank sees one GPU");
  }
}

TEST(AssignGpu, RanksBoundToTheSameSingleGpuShareIt) {
  // --ntasks-per-gpu=2 on two GPUs: ranks 0, 1 see GPU-a; ranks 2, 3 see GPU-b.
  const Lists visible = {{"GPU-a"}, {"GPU-a"}, {"GPU-b"}, {"GPU-b"}};
  EXPECT_EQ(assign_gpu(visible, 0).sharing_with, std::vector<int>{1});
  EXPECT_EQ(assign_gpu(visible, 3).sharing_with, std::vector<int>{2});
  EXPECT_EQ(assign_gpu(visible, 3).index, 0);
  EXPECT_EQ(assign_gpu(visible, 3).gpu, "GPU-b");
}

TEST(AssignGpu, MixedListsShareOnlyWhereTwoRanksPickTheSamePhysicalGpu) {
  // Different lists, nobody collides: {a, b} for 0 and 1, {c} for 2.
  const Lists distinct = {{"GPU-a", "GPU-b"}, {"GPU-a", "GPU-b"}, {"GPU-c"}};
  EXPECT_EQ(assign_gpu(distinct, 1).gpu, "GPU-b");
  EXPECT_EQ(assign_gpu(distinct, 2).gpu, "GPU-c");
  for (int rank = 0; rank < 3; ++rank) EXPECT_TRUE(assign_gpu(distinct, rank).sharing_with.empty());
  EXPECT_EQ(assign_gpu(distinct, 0).layout, "ranks on the node see different sets of GPUs");
  // The same GPU under other CUDA indices: rank 0 takes a (index 0), rank 1 sees {b, a} and
  // takes b (index 0), rank 2 sees only a: it collides with rank 0.
  const Lists overlapping = {{"GPU-a", "GPU-b"}, {"GPU-b", "GPU-a"}, {"GPU-a"}};
  EXPECT_EQ(assign_gpu(overlapping, 1).gpu, "GPU-b");
  EXPECT_EQ(assign_gpu(overlapping, 2).sharing_with, std::vector<int>{0});
  EXPECT_EQ(assign_gpu(overlapping, 0).sharing_with, std::vector<int>{2});
  // A rank that sees nothing takes nothing, and shares with nobody.
  const Lists blind = {{"GPU-a"}, {}};
  EXPECT_EQ(assign_gpu(blind, 1).index, -1);
  EXPECT_TRUE(assign_gpu(blind, 1).sharing_with.empty());
  EXPECT_TRUE(assign_gpu(blind, 0).sharing_with.empty());
}

TEST(PlanDevice, AutoPicksCudaAndNcclOnAGpuNodeAndTheLocalRanksGpu) {
  const DevicePlan plan = plan_device("auto", "auto", false, node(per_node(4, 4), 2));
  EXPECT_EQ(plan.device, torch::Device(torch::kCUDA, 2));
  EXPECT_EQ(plan.backend, "nccl");
  EXPECT_NE(plan.reason.find("sees its 4 GPUs"), std::string::npos) << plan.reason;
  EXPECT_NE(plan.reason.find("(GPU-2)"), std::string::npos) << plan.reason;
  EXPECT_TRUE(plan.warning.empty());
}

TEST(PlanDevice, OneGpuPerTaskRunsNcclOnCudaZeroEvenWithShareGpus) {
  for (const bool share : {false, true}) {
    const DevicePlan plan = plan_device("auto", "auto", share, node(per_task(4), 3));
    EXPECT_EQ(plan.device, torch::Device(torch::kCUDA, 0));
    EXPECT_EQ(plan.backend, "nccl") << "--share-gpus forced MPI on four distinct GPUs";
    EXPECT_EQ(plan_device("cuda", "nccl", share, node(per_task(4), 1)).backend, "nccl");
  }
}

TEST(PlanDevice, AutoFallsBackToCpuAndMpi) {
  for (const DeviceFacts& facts :
       {node(per_node(2, 0), 0), node(per_node(2, 4), 0, false), node({{"GPU-a"}, {}}, 0)}) {
    const DevicePlan plan = plan_device("auto", "auto", false, facts);
    EXPECT_TRUE(plan.device.is_cpu());
    EXPECT_EQ(plan.backend, "mpi");
    EXPECT_FALSE(plan.reason.empty());
  }
  EXPECT_NE(plan_device("auto", "auto", false, node({{"GPU-a"}, {}}, 0))
                .reason.find("not every rank of the job sees a GPU"),
            std::string::npos);
  // CUDA without NCCL: GPUs with the MPI backend.
  const DevicePlan no_nccl =
      plan_device("auto", "auto", false, node(per_node(2, 2), 1, true, false));
  EXPECT_EQ(no_nccl.device, torch::Device(torch::kCUDA, 1));
  EXPECT_EQ(no_nccl.backend, "mpi");
}

TEST(PlanDevice, AutoWarnsWhenTheNodeHasNvidiaDevicesButThisProcessSeesNoGpu) {
  DeviceFacts hidden = node(per_node(2, 0), 0);  // cgroup-constrained: /dev/nvidia* but no GPU
  const DevicePlan plan = plan_device("auto", "auto", false, hidden);
  EXPECT_TRUE(plan.device.is_cpu());
  EXPECT_NE(plan.warning.find("no GPU is visible to this process"), std::string::npos)
      << plan.warning;
  EXPECT_EQ(plan.warning.find('\n'), std::string::npos);
  hidden.nvidia_device_files = false;  // a CPU node: nothing to warn about
  EXPECT_TRUE(plan_device("auto", "auto", false, hidden).warning.empty());
  hidden.nvidia_device_files = true;
  EXPECT_TRUE(plan_device("cpu", "auto", false, hidden).warning.empty());  // asked for the CPU
  EXPECT_TRUE(plan_device("auto", "auto", false, node(per_node(2, 1), 0, /*cuda=*/false))
                  .warning.empty());  // a CPU-only build cannot see GPUs anyway
}

TEST(PlanDevice, ImpossibleRequestsAreOneLineErrors) {
  EXPECT_NE(plan_error("cuda", "auto", false, node(per_node(1, 0), 0))
                .find("no CUDA device is visible to this process"),
            std::string::npos);
  EXPECT_NE(
      plan_error("cuda", "auto", false, node(per_node(1, 1), 0, false)).find("built without CUDA"),
      std::string::npos);
  EXPECT_NE(plan_error("cuda", "nccl", false, node(per_node(1, 1), 0, true, false))
                .find("built without NCCL"),
            std::string::npos);
  EXPECT_NE(
      plan_error("cpu", "nccl", false, node(per_node(1, 1), 0)).find("nccl needs device = cuda"),
      std::string::npos);
  EXPECT_NE(plan_error("tpu", "auto", false, node(per_node(1, 1), 0)).find("device: 'tpu'"),
            std::string::npos);
  const std::string shared = plan_error("cuda", "auto", false, node(per_node(4, 1), 0));
  EXPECT_NE(shared.find("local rank 0 and local ranks 1, 2, 3 would share GPU GPU-0"),
            std::string::npos)
      << shared;
  EXPECT_NE(shared.find("--share-gpus"), std::string::npos) << shared;
  for (const auto& message : {plan_error("cuda", "auto", false, node(per_node(1, 0), 0)),
                              plan_error("cpu", "nccl", false, node(per_node(1, 1), 0)), shared})
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(PlanDevice, SharingGpusMeansTheMpiBackend) {
  const DevicePlan shared = plan_device("cuda", "auto", true, node(per_node(4, 1), 3));
  EXPECT_EQ(shared.device, torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(shared.backend, "mpi");
  EXPECT_NE(shared.reason.find("shared"), std::string::npos) << shared.reason;
  EXPECT_NE(plan_error("cuda", "nccl", true, node(per_node(4, 1), 3))
                .find("cannot run two ranks on one GPU"),
            std::string::npos);
  // A rank whose own GPU is not shared still takes MPI when another node (or rank) shares one:
  // every rank of the job must use the same backend.
  DeviceFacts elsewhere = node(per_task(2), 0);
  elsewhere.gpu_shared_in_job = true;
  EXPECT_EQ(plan_device("cuda", "auto", true, elsewhere).backend, "mpi");
}

// A communicator that records when it was made.
class RecordingCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  const char* name() const override { return "recording"; }
  void broadcast(torch::Tensor&, int) override {}
  void all_reduce_mean(torch::Tensor&) override {}
  void all_reduce_sum(torch::Tensor&) override {}
  void all_gather(const torch::Tensor&, torch::Tensor&) override {}
  void barrier() override {}
};

TEST(SetUpDevice, SelectsTheGpuBeforeMakingTheCommunicator) {
  std::vector<std::string> calls;
  const DeviceSetup setup{[&](torch::Device device) { calls.push_back("select " + device.str()); },
                          [&](const DevicePlan& plan) -> std::unique_ptr<Communicator> {
                            calls.push_back("communicator " + plan.backend);
                            return std::make_unique<RecordingCommunicator>();
                          }};
  const DevicePlan gpu = plan_device("auto", "auto", false, node(per_node(2, 2), 1));
  EXPECT_NE(set_up_device(gpu, setup), nullptr);
  EXPECT_EQ(calls, (std::vector<std::string>{"select cuda:1", "communicator nccl"}));

  calls.clear();  // a CPU rank selects no GPU
  set_up_device(plan_device("cpu", "auto", false, node(per_node(2, 2), 1)), setup);
  EXPECT_EQ(calls, (std::vector<std::string>{"communicator mpi"}));

  calls.clear();  // a failure to select the GPU comes before any communicator exists
  const DeviceSetup failing{[](torch::Device) { throw Error("no such device"); },
                            setup.make_communicator};
  EXPECT_THROW(set_up_device(gpu, failing), Error);
  EXPECT_TRUE(calls.empty());
}

TEST(CollectiveTeardown, ReleasesOnANormalExitAndAbortsWhileAnExceptionUnwinds) {
  std::vector<std::string> calls;
  auto make = [&] {
    return std::make_unique<CollectiveTeardown>([&] { calls.push_back("release"); },
                                                [&] { calls.push_back("abort"); });
  };
  { auto normal = make(); }
  try {
    auto unwound = make();
    throw Error("a failure on this rank only");
  } catch (const Error&) {
  }
  {
    auto failed = make();
    failed->mark_failed();
  }
  // Made while an exception is already in flight (in a destructor during unwinding) and left
  // normally: that exception is not its own, so it releases.
  struct MakesOneWhileUnwinding {
    std::function<void()> body;
    ~MakesOneWhileUnwinding() { body(); }
  };
  try {
    MakesOneWhileUnwinding guard{[&] { auto inner = make(); }};
    throw Error("outer");
  } catch (const Error&) {
  }
  EXPECT_EQ(calls, (std::vector<std::string>{"release", "abort", "abort", "release"}));
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
