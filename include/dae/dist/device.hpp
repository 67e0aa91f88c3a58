// defines: dae::DevicePlan, dae::plan_device (which device and which all-reduce backend a rank
//          uses, and why), dae::GpuAssignment, dae::assign_gpu, dae::gather_node_gpus (which of
//          the GPUs it sees a rank takes, from what every rank on its node sees),
//          dae::DeviceSetup, dae::set_up_device, dae::JobDevice, dae::set_up_job_device,
//          dae::cuda_built, dae::nccl_built
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/dist/communicator.hpp"
#include "dae/dist/mpi.hpp"

namespace dae {

// What this build of dae_dist can do (decided at compile time).
bool cuda_built();  // LibTorch has CUDA and dae_dist was built with its CUDA code paths
bool nccl_built();  // the NCCL backend was compiled in (DAE_WITH_NCCL)
// Why a build has no CUDA, for error messages.
inline constexpr const char* kNoCudaReason = "a CPU-only LibTorch, or DAE_WITH_CUDA=OFF";

// Which GPU a rank takes. Slurm binds GPUs in several ways: every rank sees all of the node's
// GPUs (--gres=gpu:N), each rank sees only its own (--gpus-per-task=1, --gpu-bind=per_task), or
// several ranks see the same one GPU (--ntasks-per-gpu=2). The CUDA index alone cannot tell
// these apart (cuda:0 is another GPU in each rank), so the choice is made from the GPUs'
// identities (UUIDs) that every rank on the node sees.
struct GpuAssignment {
  int index = -1;                 // into this rank's own visible list (cuda:<index>); -1: none
  std::string gpu;                // identity (UUID) of that GPU
  std::vector<int> sharing_with;  // the node's other local ranks that take the same GPU
  std::string layout;             // one phrase for the log: how the node's GPUs are bound
};

// Ranks that see the same list (same GPUs, same order) share it out round-robin in local-rank
// order: all ranks seeing all GPUs gives local_rank % n; a rank alone with its list (one GPU of
// its own) takes index 0. A GPU taken by two ranks is shared. `visible` is, by local rank, the
// identities each rank sees; a pure function, so every rank of the node computes the same answer.
GpuAssignment assign_gpu(const std::vector<std::vector<std::string>>& visible, int local_rank);

// Every local rank's visible GPU identities, by local rank (a collective over `world`: every
// rank calls it, each with its own list).
std::vector<std::vector<std::string>> gather_node_gpus(const MpiComm& world,
                                                       const std::vector<std::string>& mine);

struct DevicePlan {
  torch::Device device = torch::kCPU;  // cpu, or cuda:<gpu> for this rank
  BackendKind backend = BackendKind::kMpi;  // mpi | nccl (never auto)
  std::string reason;                  // one line: why, for rank 0's log
  std::string warning;                 // one line, or empty: a setup that is likely a mistake
};

// The facts the choice depends on; filled from the build and the node at start.
struct DeviceFacts {
  bool cuda_built = false;
  bool nccl_built = false;
  int gpus_visible = 0;              // CUDA devices this process sees
  GpuAssignment assignment;          // assign_gpu for this rank
  bool every_rank_has_gpu = false;   // in the whole job: auto picks CUDA only then
  bool gpu_shared_in_job = false;    // on some node two ranks take the same GPU
  bool nvidia_device_files = false;  // /dev/nvidia* exists on this node
  int local_rank = 0;                // this rank among the node's ranks
  int local_size = 1;                // ranks on this node
};

// device = auto | cpu | cuda, backend = auto | mpi | nccl. auto picks cuda + nccl when the build
// has them and every rank sees a GPU, else cpu + mpi. Two ranks on one physical GPU is an error
// unless `share_gpus`, and then the backend is MPI everywhere (NCCL refuses two ranks on one
// GPU, and every rank must use the same backend). Throws dae::Error with one line for any
// impossible request.
DevicePlan plan_device(DeviceKind device, BackendKind backend, bool share_gpus,
                       const DeviceFacts& facts);

// The steps after planning, in the order they must run; replaceable so that a test can check the
// order without a GPU. The CUDA device is set for the whole process first: the communicator,
// the model and any CUDA call after them then use this rank's GPU, never a context on cuda:0
// created by a call that ran before the device was chosen.
struct DeviceSetup {
  std::function<void(torch::Device)> select_gpu;  // select_gpu (dist/cuda_plugin.hpp) in dae_dist
  std::function<std::unique_ptr<Communicator>(const DevicePlan&)> make_communicator;
};
std::unique_ptr<Communicator> set_up_device(const DevicePlan& plan, const DeviceSetup& setup);

// A rank's device and the job's one communicator on it.
struct JobDevice {
  DevicePlan plan;
  std::unique_ptr<Communicator> comm;  // MpiCommunicator, or NCCL's on plan.device
};
// The whole start-up of the device, collectively: each rank plans from the GPUs it sees and
// those its node's other ranks see (Slurm may bind all GPUs to every rank, one to each, or one
// to several), then sets its device and makes the communicator (set_up_device). Every rank takes
// part in the gathers and votes even where its own part failed, so that none is left waiting;
// a failure anywhere ends every rank with one line. `control`: the start-up's control plane.
JobDevice set_up_job_device(const Config& config, const Communicator& control);

}  // namespace dae
