// Part of the CUDA plugin libdae_cuda.so (dist/cuda_plugin.hpp): StepGraph over at::cuda::CUDAGraph.
#include "dae/dist/step_graph.hpp"

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dae/dist/cuda_plugin.hpp"
#include "dae/core/error.hpp"

namespace dae {

namespace {

// Makes `waiting` wait, on the device, for the work queued on `done` so far.
void order_after(const c10::cuda::CUDAStream& waiting, const c10::cuda::CUDAStream& done) {
  at::cuda::CUDAEvent event;
  event.record(done);
  event.block(waiting);
}

class CudaStepGraph final : public StepGraph {
 public:
  explicit CudaStepGraph(torch::Device device)
      : device_(device), stream_(c10::cuda::getStreamFromPool(false, device.index())) {}

  void run(const std::function<void()>& step) override {
    if (runs_ > kWarmupRuns) {
      graph_.replay();  // on the current stream: ordered with the caller's work as it is
      return;
    }
    // Warm-up and capture on a side stream: capture needs a stream other than the default one,
    // and the warm-up's allocations then live on the stream the capture will use.
    const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device_.index());
    order_after(stream_, caller);
    {
      const c10::cuda::CUDAStreamGuard on_side_stream(stream_);
      if (runs_ < kWarmupRuns) {
        step();
      } else {
        try {
          graph_.capture_begin();
          step();
          graph_.capture_end();
        } catch (const std::exception& error) {
          abandon_capture();
          throw Error(std::string("cuda-graph: capturing the training step failed: ") +
                      error.what());
        }
      }
    }
    order_after(caller, stream_);
    if (runs_ == kWarmupRuns) graph_.replay();  // the capture recorded the step, ran nothing
    ++runs_;
  }

 private:
  // Ends a capture that failed half-way: a stream left capturing makes every later CUDA call on it
  // fail, and the job must still get to report the first error and shut down. Called on the
  // capture stream (the guard in run). Through LibTorch's wrappers only: capture_end ends the
  // stream's capture (and throws for an invalidated one, after clearing CUDA's error state), and
  // reset() releases the partial graph and its memory pool.
  void abandon_capture() {
    try {
      if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None)
        graph_.capture_end();
    } catch (const std::exception&) {  // the capture's own error is the one reported
    }
    try {
      graph_.reset();
    } catch (const std::exception&) {
    }
  }

  torch::Device device_;
  c10::cuda::CUDAStream stream_;
  at::cuda::CUDAGraph graph_;
  int runs_ = 0;
};

std::unique_ptr<StepGraph> make_cuda_step_graph(torch::Device device) {
  DAE_CHECK(device.is_cuda(), "cuda-graph: needs a CUDA device, got " + device.str());
  return std::make_unique<CudaStepGraph>(device);
}

// Runs when the plugin is loaded: from then on make_step_graph builds CudaStepGraphs.
[[maybe_unused]] const bool registered = (register_step_graph_factory(&make_cuda_step_graph), true);

}  // namespace

}  // namespace dae
