#include "dae/dist/cuda_plugin.hpp"

#include <dlfcn.h>

#include <filesystem>

#include "dae/dist/device.hpp"
#include "dae/core/error.hpp"
#include "dae/dist/nccl_communicator.hpp"

namespace dae {

namespace {

constexpr const char* kCudaPlugin = "libdae_cuda.so";  // see CMakeLists.txt
// Set by the plugin's static initialisers when it loads.
NcclFactory nccl_factory = nullptr;
StepGraphFactory step_graph_factory = nullptr;
GpuRuntime gpu_runtime{nullptr, nullptr};
std::string load_error = "CUDA support was not loaded";

// The directory of the shared object this function is in (libdae_core.so): the plugin is built
// next to it.
std::filesystem::path own_directory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr)
    return {};
  return std::filesystem::path(info.dli_fname).parent_path();
}

}  // namespace

std::string load_cuda_support() {
  static bool loaded = false;
  if (loaded) return "";
#ifdef DAE_WITH_CUDA
  const std::filesystem::path plugin = own_directory() / kCudaPlugin;
  // RTLD_GLOBAL: libtorch_cuda's symbols must be visible to LibTorch's later lookups.
  if (dlopen(plugin.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* message = dlerror();
    load_error = plugin.string() + ": " + (message != nullptr ? message : "cannot be loaded");
    return load_error;
  }
  loaded = true;
  return "";
#else
  load_error = std::string("this dae_dist was built without CUDA (") + kNoCudaReason + ")";
  return load_error;
#endif
}

bool nvidia_devices_present() {
  std::error_code ignored;
  return std::filesystem::exists("/dev/nvidia0", ignored) ||
         std::filesystem::exists("/dev/nvidiactl", ignored);
}

std::vector<std::string> visible_gpus(DeviceKind device, BackendKind backend) {
  if (!cuda_built() || device == DeviceKind::kCpu) return {};
  if (device == DeviceKind::kAuto && backend != BackendKind::kNccl && !nvidia_devices_present())
    return {};
  const std::string not_loaded = load_cuda_support();
  if (!not_loaded.empty())
    throw Error("device: " + name_of(device) + ": CUDA support could not be loaded: " + not_loaded);
  DAE_CHECK(gpu_runtime.visible_gpus != nullptr, "device: the CUDA plugin did not register");
  return gpu_runtime.visible_gpus();
}

int usable_gpu_count(DeviceKind device, BackendKind backend) {
  return static_cast<int>(visible_gpus(device, backend).size());
}

void select_gpu(torch::Device device) {
  DAE_CHECK(device.is_cuda(), "select_gpu: " + device.str() + " is not a CUDA device");
  if (gpu_runtime.select_gpu == nullptr)
    throw Error("device: " + device.str() + ": CUDA support is not available: " + load_error);
  gpu_runtime.select_gpu(device.index());
}

void register_nccl_factory(NcclFactory factory) { nccl_factory = factory; }

void register_step_graph_factory(StepGraphFactory factory) { step_graph_factory = factory; }

void register_gpu_runtime(GpuRuntime runtime) { gpu_runtime = runtime; }

std::unique_ptr<Communicator> make_nccl_communicator(const MpiComm& mpi, torch::Device device,
                                                     double collective_timeout_s) {
  if (!nccl_built())
    throw Error("backend: nccl requested, but this dae_dist was built without NCCL");
  if (nccl_factory == nullptr)
    throw Error("backend: nccl is not available: " + load_error);
  return nccl_factory(mpi, device, collective_timeout_s);
}

std::unique_ptr<StepGraph> make_step_graph(torch::Device device) {
  if (!cuda_built())
    throw Error(std::string("cuda-graph: this dae_dist was built without CUDA (") + kNoCudaReason +
                ")");
  if (step_graph_factory == nullptr)
    throw Error("cuda-graph: CUDA support is not available: " + load_error);
  return step_graph_factory(device);
}

}  // namespace dae
