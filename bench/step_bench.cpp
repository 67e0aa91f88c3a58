// Times one training step of the seed network at a given batch size and thread count: dae's
// fused CPU kernels against LibTorch's autograd on the same module (forward, MSE, backward; no
// optimizer, no data). Usage: dae_step_bench [batch=50] [threads=1] [steps=500] [both|fused|libtorch]
// The fused step runs the best kernel variant of the CPU, or the one DAE_CPU_ISA=avx2|generic
// forces; LibTorch's own ISA is held down with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "dae/model/cpu_kernels.hpp"
#include "dae/model/fused_conv_dae.hpp"
#include "dae/model/model.hpp"

namespace {

template <typename Step>
double milliseconds_per_step(int steps, const Step& step) {
  for (int i = 0; i < 20; ++i) step();  // warm-up: first-touch of buffers, caches
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
             .count() /
         steps;
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t batch = argc > 1 ? std::atol(argv[1]) : 50;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 500;
  const std::string which = argc > 4 ? argv[4] : "both";
  at::set_num_threads(threads);
  torch::manual_seed(1);
  dae::ConvDae model(dae::Activation::kNone);
  dae::init_xavier(*model);
  const torch::Tensor clean = torch::rand({batch, 1, 28, 28});
  const torch::Tensor noisy = clean + 0.3 * torch::randn_like(clean);

  std::printf("batch %lld, %d thread(s), kernels %s\n", static_cast<long long>(batch), threads,
              dae::kernels::isa());
  const double flop = 8.5e6 * static_cast<double>(batch);
  auto report = [&](const char* name, double ms) {
    std::printf("%-8s %.3f ms/step  %6.0f samples/s  %5.1f GFLOP/s\n", name, ms,
                1e3 * static_cast<double>(batch) / ms, flop / ms / 1e6);
  };
  if (which != "libtorch") {
    dae::FusedConvDaeStep fused(*model, batch);
    report("fused", milliseconds_per_step(steps, [&] { fused.train_step(noisy, clean); }));
  }
  if (which != "fused")
    report("libtorch", milliseconds_per_step(steps, [&] {
             for (auto& parameter : model->parameters())
               if (parameter.grad().defined()) parameter.mutable_grad().zero_();
             torch::mse_loss(model->forward(noisy), clean).backward();
           }));
  return 0;
}
