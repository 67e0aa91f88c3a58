// defines: dae::StepGraph (a training step's GPU work captured once and replayed),
//          dae::make_step_graph
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

namespace dae {

// At batch 1024 a GPU step of the seed network is a few dozen small kernels, and launching them
// one by one from the CPU takes longer than running them. A CUDA graph launches the whole step at
// once. The step must then read every per-step input from device tensors that stay in place (the
// batch, the learning rate and step number, the stop flag) and must not wait for the device.
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  // The first kWarmupRuns calls run `step` eagerly on the graph's own stream (LibTorch allocates
  // and initialises lazily: cuDNN, cuBLAS, the autograd engine's threads); the next captures it
  // and replays the capture, and every later call only replays (`step` is not called). Ordered
  // with the current stream's work before and after. Throws dae::Error if the capture fails.
  virtual void run(const std::function<void()>& step) = 0;
  static constexpr int kWarmupRuns = 3;
};

// A StepGraph on `device` from the CUDA plugin (dist/cuda_plugin.hpp). Throws dae::Error when CUDA
// support is not loaded or the build has no CUDA. Defined in dae_distributed (cuda_plugin.cpp); the graph itself comes from
// the plugin.
std::unique_ptr<StepGraph> make_step_graph(torch::Device device);

}  // namespace dae
