#include "dae/dist/device.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>

#include "dae/core/error.hpp"
#include "dae/dist/cuda_plugin.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/dist/nccl_communicator.hpp"

namespace dae {

bool cuda_built() {
#ifdef DAE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#ifdef DAE_WITH_NCCL
  return true;
#else
  return false;
#endif
}

GpuAssignment assign_gpu(const std::vector<std::vector<std::string>>& visible, int local_rank) {
  DAE_CHECK(local_rank >= 0 && local_rank < static_cast<int>(visible.size()),
            "assign_gpu: local rank " + std::to_string(local_rank) + " of " +
                std::to_string(visible.size()));
  // Each rank's pick, as an identity ("" for a rank that sees no GPU).
  std::vector<std::string> picked(visible.size());
  std::map<std::vector<std::string>, int> taken;  // how many ranks before took from this list
  std::vector<int> index(visible.size(), -1);
  for (std::size_t rank = 0; rank < visible.size(); ++rank) {
    const auto& list = visible[rank];
    if (list.empty()) continue;
    const int position = taken[list]++;
    index[rank] = position % static_cast<int>(list.size());
    picked[rank] = list[static_cast<std::size_t>(index[rank])];
  }

  GpuAssignment result;
  result.index = index[static_cast<std::size_t>(local_rank)];
  result.gpu = picked[static_cast<std::size_t>(local_rank)];
  for (std::size_t rank = 0; rank < visible.size(); ++rank)
    if (static_cast<int>(rank) != local_rank && !result.gpu.empty() && picked[rank] == result.gpu)
      result.sharing_with.push_back(static_cast<int>(rank));

  const bool all_same = std::all_of(visible.begin(), visible.end(),
                                    [&](const auto& list) { return list == visible.front(); });
  const bool one_each = std::all_of(visible.begin(), visible.end(),
                                    [](const auto& list) { return list.size() == 1; });
  if (all_same)
    result.layout =
        "every rank on the node sees its " + std::to_string(visible.front().size()) + " GPUs";
  else if (one_each)
    result.layout = "each rank sees one GPU";
  else
    result.layout = "ranks on the node see different sets of GPUs";
  return result;
}

std::vector<std::vector<std::string>> gather_node_gpus(const MpiComm& world,
                                                       const std::vector<std::string>& mine) {
  // The node's ranks (those sharing memory) as an MpiComm, for its collectives with the job's
  // collective timeout: MpiComm duplicates the split communicator, which is freed at once.
  MPI_Comm split = MPI_COMM_NULL;
  DAE_CHECK_MPI(
      MPI_Comm_split_type(world.get(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &split));
  std::unique_ptr<MpiComm> node;
  try {
    node = std::make_unique<MpiComm>(split);
  } catch (...) {
    MPI_Comm_free(&split);
    throw;
  }
  MPI_Comm_free(&split);
  node->set_collective_timeout(world.collective_timeout());

  // One block per rank, as long as the longest: each rank fills its own, zeros elsewhere, and a
  // bitwise-or all-reduce gives every rank all of them. One identity per line (UUIDs and PCI
  // addresses have no newline or NUL).
  std::string packed;
  for (const auto& id : mine) packed += id + "\n";
  int longest = static_cast<int>(packed.size());
  node->all_reduce(&longest, 1, MPI_INT, MPI_MAX, "the node's GPU lists");
  const auto block = static_cast<std::size_t>(longest);
  const auto ranks = static_cast<std::size_t>(node->size());
  std::vector<char> all(ranks * block, '\0');
  std::copy(
      packed.begin(), packed.end(),
      all.begin() + static_cast<std::ptrdiff_t>(block * static_cast<std::size_t>(node->rank())));
  if (!all.empty())
    node->all_reduce(all.data(), static_cast<int>(all.size()), MPI_BYTE, MPI_BOR,
                     "the node's GPU lists");
  std::vector<std::vector<std::string>> visible(ranks);
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    const std::string text(all.data() + rank * block, block);
    std::istringstream lines(text.substr(0, text.find('\0')));
    for (std::string id; std::getline(lines, id);) visible[rank].push_back(id);
  }
  return visible;
}

DevicePlan plan_device(DeviceKind device, BackendKind backend, bool share_gpus,
                       const DeviceFacts& facts) {
  DevicePlan plan;
  bool use_cuda = device == DeviceKind::kCuda;
  if (device == DeviceKind::kAuto) use_cuda = facts.cuda_built && facts.every_rank_has_gpu;
  const GpuAssignment& gpu = facts.assignment;
  if (use_cuda) {
    DAE_CHECK(facts.cuda_built,
              std::string("device: cuda requested, but this dae_dist was built without CUDA (") +
                  kNoCudaReason + ")");
    DAE_CHECK(facts.gpus_visible > 0 && gpu.index >= 0,
              "device: cuda requested, but no CUDA device is visible to this process (check the "
              "driver, CUDA_VISIBLE_DEVICES and the job's GPU request)");
    if (!gpu.sharing_with.empty() && !share_gpus) {
      std::string others;
      for (const int rank : gpu.sharing_with)
        others += (others.empty() ? "" : ", ") + std::to_string(rank);
      throw Error("device: local rank " + std::to_string(facts.local_rank) + " and local rank" +
                  (gpu.sharing_with.size() > 1 ? "s " : " ") + others + " would share GPU " +
                  gpu.gpu + " (" + gpu.layout +
                  "): give each rank its own GPU, or allow it with --share-gpus");
    }
    plan.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(gpu.index));
  }

  const bool shared = use_cuda && facts.gpu_shared_in_job;
  if (backend == BackendKind::kNccl) {
    DAE_CHECK(facts.nccl_built,
              "backend: nccl requested, but this dae_dist was built without "
              "NCCL (DAE_WITH_NCCL=OFF or NCCL not found)");
    DAE_CHECK(use_cuda, "backend: nccl needs device = cuda (NCCL reduces GPU memory only)");
    DAE_CHECK(!shared,
              "backend: nccl cannot run two ranks on one GPU; use backend = mpi with "
              "--share-gpus");
    plan.backend = BackendKind::kNccl;
  } else if (backend == BackendKind::kMpi) {
    plan.backend = BackendKind::kMpi;
  } else {
    plan.backend = use_cuda && facts.nccl_built && !shared ? BackendKind::kNccl : BackendKind::kMpi;
  }

  if (!use_cuda)
    plan.reason = device == DeviceKind::kCpu ? "device = cpu requested"
                  : !facts.cuda_built       ? "this build has no CUDA"
                  : facts.gpus_visible == 0 ? "no CUDA device visible to this process"
                                            : "not every rank of the job sees a GPU";
  else
    plan.reason = gpu.layout + "; local rank " + std::to_string(facts.local_rank) + " of " +
                  std::to_string(facts.local_size) + " takes cuda:" + std::to_string(gpu.index) +
                  " (" + gpu.gpu + ")" + (gpu.sharing_with.empty() ? "" : ", shared");
  const bool nccl = plan.backend == BackendKind::kNccl;
  plan.reason += "; backend " + name_of(plan.backend) +
                 (backend == BackendKind::kAuto
                      ? (nccl ? " (GPU tensors, NCCL built)" : " (NCCL not usable here)")
                      : " requested");
  // Under Slurm's cgroup device constraint a job that asked for no GPU sees none, though the
  // node has them: auto would then train on the CPU without a word.
  if (device == DeviceKind::kAuto && facts.cuda_built && facts.nvidia_device_files && facts.gpus_visible == 0)
    plan.warning =
        "device = auto: this node has NVIDIA devices (/dev/nvidia*) but no GPU is "
        "visible to this process, so it trains on the CPU; request GPUs for the job "
        "(--gres=gpu:N or --gpus-per-task=1) and check CUDA_VISIBLE_DEVICES";
  return plan;
}

std::unique_ptr<Communicator> set_up_device(const DevicePlan& plan, const DeviceSetup& setup) {
  if (plan.device.is_cuda()) setup.select_gpu(plan.device);
  return setup.make_communicator(plan);
}

JobDevice set_up_job_device(const Config& config, const Communicator& control) {
  std::vector<std::string> gpus;
  std::string gpu_error;
  try {
    gpus = visible_gpus(config.device, config.backend);
  } catch (const std::exception& error) {
    gpu_error = one_line(error);
  }
  const MpiComm& world = control.mpi();
  DeviceFacts facts{};
  facts.assignment = assign_gpu(gather_node_gpus(world, gpus), world.local_rank());
  facts.every_rank_has_gpu = control.all_agree(!gpus.empty());
  facts.gpu_shared_in_job = !control.all_agree(facts.assignment.sharing_with.empty());
  JobDevice job;
  control.run_collectively([&] {
    if (!gpu_error.empty()) throw Error(gpu_error);
    facts.cuda_built = cuda_built();
    facts.nccl_built = nccl_built();
    facts.gpus_visible = static_cast<int>(gpus.size());
    facts.nvidia_device_files = nvidia_devices_present();
    facts.local_rank = world.local_rank();
    facts.local_size = world.local_size();
    job.plan = plan_device(config.device, config.backend, config.share_gpus, facts);
    // The device is set for the whole process before the communicator, the model or any other
    // CUDA call (set_up_device's order).
    const auto make_communicator = [&](const DevicePlan& chosen) -> std::unique_ptr<Communicator> {
      if (chosen.backend == BackendKind::kNccl)
        return make_nccl_communicator(world, chosen.device, config.collective_timeout_s);
      return std::make_unique<MpiCommunicator>(world);
    };
    job.comm = set_up_device(job.plan, {select_gpu, make_communicator});
  });
  return job;
}

}  // namespace dae
