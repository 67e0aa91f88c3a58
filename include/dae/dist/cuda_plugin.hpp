// defines: dae::load_cuda_support (LibTorch's CUDA library and the NCCL backend, loaded only where
//          GPUs may be used), dae::nvidia_devices_present, dae::visible_gpus, dae::select_gpu,
//          dae::register_nccl_factory, dae::register_step_graph_factory,
//          dae::register_gpu_runtime
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dae/core/config.hpp"
#include "dae/dist/communicator.hpp"
#include "dae/dist/step_graph.hpp"
#include "dae/dist/mpi.hpp"

namespace dae {

// A CUDA build of LibTorch maps and relocates ≈ 250 MB of CUDA libraries into every process that
// links them, GPU or not: more than a CPU rank's whole working set. So dae_core links LibTorch's
// CPU library only, and everything CUDA (libtorch_cuda, which registers the CUDA device with
// LibTorch when it loads, and the NCCL communicator) lives in the plugin libdae_cuda.so next to
// libdae_core.so, loaded by this call. Safe to call again; returns "" once loaded, else why not
// (a build without CUDA, or the loader's message). Call it before anything asks LibTorch about
// CUDA (torch::manual_seed does): LibTorch looks for its CUDA library once and keeps the answer.
std::string load_cuda_support();

// Whether the node shows NVIDIA device files (/dev/nvidia0, ...): device = auto loads CUDA
// support only then, so a CPU node never pays for it.
bool nvidia_devices_present();

// The CUDA devices this process sees for a run configured with `device` and `backend`
// (config.hpp), loading CUDA support first where the run may use a GPU: device = cuda, backend =
// nccl, or auto on a node with NVIDIA devices. 0, without loading anything, otherwise (device =
// cpu, a build without CUDA). Throws dae::Error when CUDA support is needed and does not load.
int usable_gpu_count(DeviceKind device, BackendKind backend);
// The same devices, by identity (the GPU's UUID, as nvidia-smi -L shows it), in CUDA index order:
// what device planning compares between the ranks of a node (assign_gpu in device.hpp).
std::vector<std::string> visible_gpus(DeviceKind device, BackendKind backend);

// Makes `device` the process's current CUDA device (c10::cuda::set_device). Throws dae::Error
// when CUDA support is not loaded.
void select_gpu(torch::Device device);

// How the plugin hands its NCCL communicator to make_nccl_communicator (nccl_communicator.hpp).
using NcclFactory = std::unique_ptr<Communicator> (*)(const MpiComm& mpi, torch::Device device,
                                                      double collective_timeout_s);
void register_nccl_factory(NcclFactory factory);
// How the plugin hands its CUDA graph to make_step_graph (step_graph.hpp).
using StepGraphFactory = std::unique_ptr<StepGraph> (*)(torch::Device device);
void register_step_graph_factory(StepGraphFactory factory);
// How the plugin answers visible_gpus and select_gpu, through LibTorch's CUDA runtime: dae_core
// never calls the CUDA runtime itself.
struct GpuRuntime {
  std::vector<std::string> (*visible_gpus)();
  void (*select_gpu)(int index);
};
void register_gpu_runtime(GpuRuntime runtime);

}  // namespace dae
