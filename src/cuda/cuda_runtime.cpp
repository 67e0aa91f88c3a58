// Part of the CUDA plugin libdae_cuda.so (dist/cuda_plugin.hpp): which GPUs this process sees, and
// the process's current device, through LibTorch's CUDA runtime (c10::cuda, at::cuda).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>

#include <cstdio>

#include "dae/dist/cuda_plugin.hpp"

namespace dae {

namespace {

// nvidia-smi's spelling (GPU-8-4-4-4-12 hex digits), so that a log line can be matched against
// `nvidia-smi -L`. A device without a UUID is named by its PCI address, unique on a node too.
std::string identity_of(const cudaDeviceProp& properties) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(properties.uuid.bytes);
  bool any = false;
  for (int i = 0; i < 16; ++i) any = any || bytes[i] != 0;
  char text[64];
  if (!any) {
    std::snprintf(text, sizeof text, "pci-%04x:%02x:%02x", properties.pciDomainID,
                  properties.pciBusID, properties.pciDeviceID);
    return text;
  }
  std::string id = "GPU-";
  for (int i = 0; i < 16; ++i) {
    std::snprintf(text, sizeof text, "%02x", bytes[i]);
    id += text;
    if (i == 3 || i == 5 || i == 7 || i == 9) id += '-';
  }
  return id;
}

// Properties only: no CUDA context is created on any device by this query.
std::vector<std::string> visible_gpu_identities() {
  std::vector<std::string> ids;
  const c10::DeviceIndex count = c10::cuda::device_count();
  for (c10::DeviceIndex index = 0; index < count; ++index)
    ids.push_back(identity_of(*at::cuda::getDeviceProperties(index)));
  return ids;
}

void set_current_gpu(int index) { c10::cuda::set_device(static_cast<c10::DeviceIndex>(index)); }

// Runs when the plugin is loaded.
[[maybe_unused]] const bool registered =
    (register_gpu_runtime({&visible_gpu_identities, &set_current_gpu}), true);

}  // namespace

}  // namespace dae
