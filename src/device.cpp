#include "dae/device.hpp"

#include "dae/error.hpp"

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

DevicePlan plan_device(const std::string& device, const std::string& backend, bool share_gpus,
                       const DeviceFacts& facts) {
  DAE_CHECK(device == "auto" || device == "cpu" || device == "cuda",
            "config: device: '" + device + "' is not one of auto, cpu, cuda");
  DAE_CHECK(backend == "auto" || backend == "mpi" || backend == "nccl",
            "config: backend: '" + backend + "' is not one of auto, mpi, nccl");

  DevicePlan plan;
  const bool gpus_usable = facts.cuda_built && facts.gpus_on_node > 0;
  bool use_cuda = device == "cuda";
  if (device == "auto") use_cuda = gpus_usable;
  if (use_cuda) {
    DAE_CHECK(facts.cuda_built,
              std::string("device: cuda requested, but this dae_dist was built without CUDA (") +
                  kNoCudaReason + ")");
    DAE_CHECK(facts.gpus_on_node > 0, "device: cuda requested, but no CUDA device is visible "
                                      "on this node (check the driver and CUDA_VISIBLE_DEVICES)");
    DAE_CHECK(facts.local_size <= facts.gpus_on_node || share_gpus,
              "device: " + std::to_string(facts.local_size) + " ranks on this node but only " +
                  std::to_string(facts.gpus_on_node) +
                  " GPUs: start one rank per GPU, or allow it with --share-gpus");
    plan.device = torch::Device(torch::kCUDA,
                                static_cast<c10::DeviceIndex>(facts.local_rank % facts.gpus_on_node));
  }

  const bool shared = use_cuda && facts.local_size > facts.gpus_on_node;
  if (backend == "nccl") {
    DAE_CHECK(facts.nccl_built, "backend: nccl requested, but this dae_dist was built without "
                                "NCCL (DAE_WITH_NCCL=OFF or NCCL not found)");
    DAE_CHECK(use_cuda, "backend: nccl needs device = cuda (NCCL reduces GPU memory only)");
    DAE_CHECK(!shared, "backend: nccl cannot run two ranks on one GPU; use backend = mpi with "
                       "--share-gpus");
    plan.backend = "nccl";
  } else if (backend == "mpi") {
    plan.backend = "mpi";
  } else {
    plan.backend = use_cuda && facts.nccl_built && !shared ? "nccl" : "mpi";
  }

  if (!use_cuda)
    plan.reason = device == "cpu" ? "device = cpu requested"
                  : !facts.cuda_built ? "this build has no CUDA"
                                      : "no CUDA device on this node";
  else
    plan.reason = std::to_string(facts.gpus_on_node) + " GPUs on the node, rank " +
                  std::to_string(facts.local_rank) + " of " + std::to_string(facts.local_size) +
                  " on it";
  plan.reason += "; backend " + plan.backend +
                 (backend == "auto" ? (plan.backend == "nccl" ? " (GPU tensors, NCCL built)"
                                                              : " (NCCL not usable here)")
                                    : " requested");
  return plan;
}

}  // namespace dae
