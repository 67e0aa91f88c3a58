// defines: dae::DevicePlan, dae::plan_device (which device and which all-reduce backend a rank
//          uses, and why), dae::cuda_built, dae::nccl_built
#pragma once

#include <torch/torch.h>

#include <string>

namespace dae {

// What this build of dae_dist can do (decided at compile time).
bool cuda_built();  // LibTorch has CUDA and dae_dist was built with its CUDA code paths
bool nccl_built();  // the NCCL backend was compiled in (DAE_WITH_NCCL)
// Why a build has no CUDA, for error messages.
inline constexpr const char* kNoCudaReason = "a CPU-only LibTorch, or DAE_WITH_CUDA=OFF";

struct DevicePlan {
  torch::Device device = torch::kCPU;  // cpu, or cuda:<gpu> for this rank
  std::string backend = "mpi";         // mpi | nccl
  std::string reason;                  // one line: why, for rank 0's log
};

// The facts the choice depends on; filled from the build and the node at start.
struct DeviceFacts {
  bool cuda_built = false;
  bool nccl_built = false;
  int gpus_on_node = 0;  // CUDA devices this process sees
  int local_rank = 0;    // this rank among the node's ranks
  int local_size = 1;    // ranks on this node
};

// device = auto | cpu | cuda, backend = auto | mpi | nccl. auto picks cuda + nccl when the build
// has them and the node has GPUs, else cpu + mpi. The node-local rank picks the GPU; more local
// ranks than GPUs is an error unless `share_gpus` (NCCL refuses two ranks on one GPU, so
// sharing implies the MPI backend). Throws dae::Error with one line for any impossible request.
DevicePlan plan_device(const std::string& device, const std::string& backend, bool share_gpus,
                       const DeviceFacts& facts);

}  // namespace dae
