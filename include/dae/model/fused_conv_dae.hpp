// defines: dae::FusedConvDaeStep (the seed network's training step on the CPU without autograd),
//          dae::make_fused_step (whether config.kernels asks for it here), dae::ConvForwardWeights
//          (the forward weights in the kernels' layouts, shared with model/inference)
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "dae/model/model.hpp"

namespace dae {

struct Config;

// ConvDaeImpl's forward weights in the matrix-product layouts of dae::kernels (tap = 5 ky + kx).
struct ConvForwardWeights {
  explicit ConvForwardWeights(const ConvDaeImpl& model);  // allocates and packs
  void pack(const ConvDaeImpl& model);                      // again, into the same buffers

  torch::Tensor enc1, enc2;  // [25, 16], [25*16, 32]: a convolution's P (see cpu_kernels.hpp)
  torch::Tensor dec1, dec2;  // [32, 25*16], [16, 25]: a transposed convolution's Q
  const float* bias1 = nullptr;  // encoder1's bias [16] (the module's own storage)
  const float* bias2 = nullptr;  // encoder2's bias [32]
  Activation output_activation = Activation::kNone;
};

// Forward, MSE loss and backward of ConvDaeImpl on the CPU, written out by hand with
// dae::kernels (cpu_kernels.hpp): activations stay NHWC in buffers allocated once, for a part of
// the batch (at most 25 samples: a step goes through the batch part by part, each forward and
// back, which keeps its working set in the caches and changes no bit of the result), so a step
// allocates nothing and runs no autograd graph. The module keeps its standard Conv2d /
// ConvTranspose2d weights: every step packs them into the layouts the matrix products want
// (26 k numbers) and writes the gradients back into each parameter's .grad() in the standard
// layout, so optimizer, all-reduce and checkpoints see exactly what autograd would give.
class FusedConvDaeStep {
 public:
  FusedConvDaeStep(ConvDaeImpl& model, std::int64_t batch);

  // noisy, clean: float [batch, 1, 28, 28] on the CPU. Runs the network on `noisy`, sets every
  // parameter's grad() to d loss / d parameter (overwriting it) and returns the MSE against
  // `clean` (a 0-dim tensor, overwritten by the next call).
  torch::Tensor train_step(const torch::Tensor& noisy, const torch::Tensor& clean);
  // The network's output [N, 1, 28, 28] for any number N of `images`, as train_step computes it
  // (the evaluation's forward on the CPU: no buffer beyond a part's). With `peaks`, also what
  // channel_peaks(model, images) gives, from the same pass.
  torch::Tensor forward(const torch::Tensor& images, torch::Tensor* peaks = nullptr);
  // The output of the last train_step, [batch, 1, 28, 28] (a view of an internal buffer).
  torch::Tensor output() const;

 private:
  void pack_weights();
  // The samples of one part (at most the buffers' part): `outputs` receives their output.
  void run_forward(const float* images, std::int64_t samples_in_part, float* outputs);
  void compute_loss(const float* clean, std::int64_t first_in_batch,
                    std::int64_t samples_in_part);
  void backward_part(std::int64_t samples_in_part, bool continue_sums);

  ConvDaeImpl& model_;
  std::int64_t batch_;
  std::int64_t parts_;  // a step's parts: ceil(batch / 25), as equal as they divide
  std::int64_t part_samples_;  // the largest part's samples: what the buffers below hold
  // Weights in matrix-product layouts (tap = 5 ky + kx), refreshed from the module every step.
  ConvForwardWeights forward_;
  torch::Tensor enc2_t_;                 // [32, 25*16]
  torch::Tensor dec1_t_;                 // [25*16, 32]
  torch::Tensor dec2_t_;                 // [25, 16]
  // Gradients in the same layouts, copied into the parameters' grad() at the end of a step.
  torch::Tensor enc1_grad_, enc2_grad_, dec1_grad_, dec2_grad_;
  // Activations (NHWC) and their gradients for one part, [rows, channels] with rows = part *
  // pixels (part: the largest part's samples).
  torch::Tensor image_rows_;   // im2col of the input [part*196, 25], kept for enc1's gradient
  torch::Tensor hidden1_;      // [part*196, 16]  14x14x16 after encoder1 + ReLU
  torch::Tensor hidden1_rows_; // im2col of hidden1 [part*49, 400], kept for enc2's gradient
  torch::Tensor code_;         // [part*49, 32]   7x7x32 code
  torch::Tensor coarse_cols_;  // [part*49, 400]  scratch: decoder1's columns, then gradients'
  torch::Tensor hidden3_;      // [part*196, 16]  14x14x16 after decoder1 + ReLU
  torch::Tensor fine_cols_;    // [part*196, 25]  scratch: decoder2's columns, then gradients'
  torch::Tensor output_;       // [batch, 784]    the whole batch's reconstruction
  torch::Tensor output_grad_;  // [part, 784]
  torch::Tensor hidden3_grad_, code_grad_, hidden1_grad_;
  std::vector<double> sample_squares_;  // [batch]: each sample's share of the loss
  torch::Tensor loss_;  // 0-dim, the last step's loss
};

// The fused step when config.kernels allows it for this model, device and precision (auto: the
// conv model on the CPU in fp32 with an AVX2 or AVX-512 kernel variant, see kernels::isa; fused:
// the conv model on the CPU in fp32, or an error), else null (LibTorch's autograd
// runs the step).
std::unique_ptr<FusedConvDaeStep> make_fused_step(const Config& config, Denoiser& model,
                                                  std::int64_t batch);

}  // namespace dae
