// dae's CPU kernels (cpu_kernels.hpp) and the fused training step (fused_conv_dae.hpp) against
// LibTorch's reference ops: every layer forward and backward, and whole steps, within 1e-5
// relative (max |difference| / max |reference|). tests/CMakeLists.txt runs them once per kernel
// variant (DAE_CPU_ISA=avx512|avx2|generic).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "dae/core/config.hpp"
#include "dae/model/cpu_kernels.hpp"
#include "dae/core/error.hpp"
#include "dae/model/fused_conv_dae.hpp"
#include "dae/model/model.hpp"

namespace dae {
namespace {

constexpr double kTolerance = 1e-5;

double relative_error(const torch::Tensor& value, const torch::Tensor& reference) {
  return (value - reference).abs().max().item<double>() / reference.abs().max().item<double>();
}

float* data(torch::Tensor& tensor) { return tensor.data_ptr<float>(); }

// NCHW <-> the kernels' NHWC rows.
torch::Tensor to_rows(const torch::Tensor& nchw) {
  return nchw.permute({0, 2, 3, 1}).contiguous().view({-1, nchw.size(1)});
}
torch::Tensor from_rows(const torch::Tensor& rows, std::int64_t batch, std::int64_t side) {
  return rows.view({batch, side, side, -1}).permute({0, 3, 1, 2});
}

TEST(Gemm, MatchesMatmulForEveryTileShape) {
  torch::manual_seed(1);
  // Rows and columns around every tile edge of both SIMD variants (AVX-512: 16-float vectors,
  // up to 12 / 24 rows; AVX2: 8-float vectors, up to 6 / 12 rows), full and masked.
  for (std::int64_t rows : {1, 5, 6, 7, 12, 13, 24, 25, 49, 61})
    for (int cols : {1, 7, 8, 9, 15, 16, 17, 24, 25, 32, 33, 400})
      for (std::int64_t depth : {1, 5, 400}) {
        const torch::Tensor a = torch::randn({rows, depth}), b = torch::randn({depth, cols});
        const torch::Tensor start = torch::randn({rows, cols});
        torch::Tensor c = start.clone();
        kernels::gemm(rows, cols, depth, a.data_ptr<float>(), depth, 1, b.data_ptr<float>(),
                      cols, data(c), cols, false);
        ASSERT_LT(relative_error(c, a.matmul(b)), kTolerance)
            << rows << "x" << depth << "x" << cols;
        // a read transposed (a_row_step 1), adding to what c held
        const torch::Tensor a_t = a.t().contiguous();
        c = start.clone();
        kernels::gemm(rows, cols, depth, a_t.data_ptr<float>(), 1, rows, b.data_ptr<float>(),
                      cols, data(c), cols, true);
        ASSERT_LT(relative_error(c, start + a.matmul(b)), kTolerance)
            << "transposed, accumulating " << rows << "x" << depth << "x" << cols;
      }
}

// What the fused step's parts rest on: a depth split into consecutive calls, the later ones
// accumulating, gives the bits of one call (each number is one chain of multiply-adds over k).
TEST(Gemm, ADepthSplitIntoCallsGivesTheBitsOfOneCall) {
  torch::manual_seed(2);
  for (std::int64_t rows : {1, 7, 13, 25})
    for (int cols : {9, 16, 25, 33, 400}) {
      const std::int64_t depth = 300;
      const torch::Tensor a = torch::randn({depth, rows}), b = torch::randn({depth, cols});
      torch::Tensor whole = torch::empty({rows, cols}), split = torch::empty({rows, cols});
      // a read transposed, as the weight gradients read it
      kernels::gemm(rows, cols, depth, a.data_ptr<float>(), 1, rows, b.data_ptr<float>(), cols,
                    data(whole), cols, false);
      std::int64_t done = 0;
      for (std::int64_t piece : {49, 1, 150, 100}) {
        kernels::gemm(rows, cols, piece, a.data_ptr<float>() + done * rows, 1, rows,
                      b.data_ptr<float>() + done * cols, cols, data(split), cols, done > 0);
        done += piece;
      }
      ASSERT_EQ(done, depth);
      EXPECT_TRUE(torch::equal(split, whole)) << rows << "x" << cols;
    }
}

// Both layer kinds of the network, on their real shapes and with an odd batch, through the
// kernels the fused step calls, against conv2d / conv_transpose2d and autograd.
struct LayerShape {
  int in, out, side;  // channels in and out, and the side of the layer's input
};

TEST(Im2colGemm, ConvolutionForwardAndBackward) {
  torch::manual_seed(2);
  const int batch = 3;
  for (const LayerShape shape : {LayerShape{1, 16, 28}, LayerShape{16, 32, 14}}) {
    const int coarse = shape.side / 2, width = kernels::kTaps * shape.in;
    torch::Tensor x = torch::randn({batch, shape.in, shape.side, shape.side}, torch::requires_grad());
    torch::Tensor w = torch::randn({shape.out, shape.in, 5, 5}, torch::requires_grad());
    const torch::Tensor y = torch::conv2d(x, w, {}, 2, 2);
    const torch::Tensor y_grad = torch::randn_like(y);
    y.backward(y_grad);

    torch::Tensor p = w.detach().permute({2, 3, 1, 0}).contiguous().view({width, shape.out});
    torch::Tensor x_rows = to_rows(x.detach());
    torch::Tensor cols = torch::empty({batch * coarse * coarse, width});
    torch::Tensor y_rows = torch::empty({batch * coarse * coarse, shape.out});
    kernels::im2col(data(x_rows), batch, shape.side, shape.side, shape.in, data(cols), width);
    kernels::gemm(cols.size(0), shape.out, width, data(cols), width, 1, data(p), shape.out,
                  data(y_rows), shape.out, false);
    EXPECT_LT(relative_error(from_rows(y_rows, batch, coarse), y.detach()), kTolerance);

    // input gradient: col2im(dY @ P^T); weight gradient: im2col(x)^T @ dY
    torch::Tensor dy_rows = to_rows(y_grad), p_t = p.t().contiguous();
    torch::Tensor grad_cols = torch::empty_like(cols), x_grad = torch::empty_like(x_rows);
    kernels::gemm(cols.size(0), width, shape.out, data(dy_rows), shape.out, 1, data(p_t), width,
                  data(grad_cols), width, false);
    kernels::col2im(data(grad_cols), batch, shape.side, shape.side, shape.in, width, data(x_grad));
    EXPECT_LT(relative_error(from_rows(x_grad, batch, shape.side), x.grad()), kTolerance);
    torch::Tensor p_grad = torch::empty_like(p);
    kernels::gemm(width, shape.out, cols.size(0), data(cols), 1, width, data(dy_rows), shape.out,
                  data(p_grad), shape.out, false);
    EXPECT_LT(relative_error(p_grad.view({5, 5, shape.in, shape.out}).permute({3, 2, 0, 1}),
                             w.grad()),
              kTolerance);
  }
}

TEST(GemmCol2im, TransposedConvolutionForwardAndBackward) {
  torch::manual_seed(3);
  const int batch = 3;
  for (const LayerShape shape : {LayerShape{32, 16, 7}, LayerShape{16, 1, 14}}) {
    const int fine = 2 * shape.side, width = kernels::kTaps * shape.out;
    torch::Tensor x = torch::randn({batch, shape.in, shape.side, shape.side}, torch::requires_grad());
    torch::Tensor w = torch::randn({shape.in, shape.out, 5, 5}, torch::requires_grad());
    const torch::Tensor y = torch::conv_transpose2d(x, w, {}, 2, 2, 1);
    const torch::Tensor y_grad = torch::randn_like(y);
    y.backward(y_grad);

    torch::Tensor q = w.detach().permute({0, 2, 3, 1}).contiguous().view({shape.in, width});
    torch::Tensor x_rows = to_rows(x.detach());
    torch::Tensor cols = torch::empty({x_rows.size(0), width});
    torch::Tensor y_rows = torch::empty({batch * fine * fine, shape.out});
    kernels::gemm(cols.size(0), width, shape.in, data(x_rows), shape.in, 1, data(q), width,
                  data(cols), width, false);
    kernels::col2im(data(cols), batch, fine, fine, shape.out, width, data(y_rows));
    EXPECT_LT(relative_error(from_rows(y_rows, batch, fine), y.detach()), kTolerance);

    // input gradient: im2col(dY) @ Q^T; weight gradient: x^T @ im2col(dY)
    torch::Tensor dy_rows = to_rows(y_grad), q_t = q.t().contiguous();
    torch::Tensor grad_cols = torch::empty_like(cols), x_grad = torch::empty_like(x_rows);
    kernels::im2col(data(dy_rows), batch, fine, fine, shape.out, data(grad_cols), width);
    kernels::gemm(cols.size(0), shape.in, width, data(grad_cols), width, 1, data(q_t), shape.in,
                  data(x_grad), shape.in, false);
    EXPECT_LT(relative_error(from_rows(x_grad, batch, shape.side), x.grad()), kTolerance);
    torch::Tensor q_grad = torch::empty_like(q);
    kernels::gemm(shape.in, width, x_rows.size(0), data(x_rows), 1, shape.in, data(grad_cols),
                  width, data(q_grad), width, false);
    EXPECT_LT(relative_error(q_grad.view({shape.in, 5, 5, shape.out}).permute({0, 3, 1, 2}),
                              w.grad()),
              kTolerance);
  }
}

// The forced runs of these tests must really run the variant they name, or they would test the
// same kernels three times.
TEST(Kernels, RunTheVariantDaeCpuIsaAsksForElseTheBest) {
  const char* forced = std::getenv("DAE_CPU_ISA");
  if (forced != nullptr && *forced != '\0')
    EXPECT_STREQ(kernels::isa(), forced);
  else
    EXPECT_EQ(kernels::current_isa(), kernels::best_isa());
}

TEST(Kernels, ChooseIsaForcesALowerVariantAndRefusesAHigherOne) {
  using kernels::Isa;
  EXPECT_EQ(kernels::choose_isa(nullptr, Isa::kAvx2), Isa::kAvx2);
  EXPECT_EQ(kernels::choose_isa("", Isa::kAvx512), Isa::kAvx512);
  EXPECT_EQ(kernels::choose_isa("avx2", Isa::kAvx512), Isa::kAvx2);
  EXPECT_EQ(kernels::choose_isa("generic", Isa::kAvx512), Isa::kGeneric);
  EXPECT_EQ(kernels::choose_isa("avx512", Isa::kAvx512), Isa::kAvx512);
  try {
    kernels::choose_isa("avx512", Isa::kAvx2);
    FAIL() << "avx512 forced on an AVX2 CPU";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "DAE_CPU_ISA=avx512: this CPU runs at most avx2 (a lower one can "
                               "be forced, never a higher one)");
  }
  EXPECT_THROW(kernels::choose_isa("avx2", Isa::kGeneric), Error);
  EXPECT_THROW(kernels::choose_isa("AVX2", Isa::kAvx512), Error);  // names are lower case
}

// A whole step: loss and every parameter's gradient, for each output activation, at one and
// two threads, against LibTorch's autograd on the same module.
TEST(FusedConvDaeStep, MatchesAutogradOnAWholeStep) {
  const int threads_before = at::get_num_threads();
  for (const Activation activation :
       {Activation::kRelu, Activation::kSigmoid, Activation::kNone})
    for (int threads : {1, 2}) {
      at::set_num_threads(threads);
      torch::manual_seed(4);
      ConvDae model(activation);
      init_xavier(*model, 0.05);  // positive biases keep the ReLUs, and so the gradients, alive
      const std::int64_t batch = 7;
      const torch::Tensor clean = torch::rand({batch, 1, 28, 28});
      const torch::Tensor noisy = clean + 0.5 * torch::randn_like(clean);

      const torch::Tensor loss = torch::mse_loss(model->forward(noisy), clean);
      loss.backward();
      std::vector<torch::Tensor> expected;
      for (auto& parameter : model->parameters()) {
        expected.push_back(parameter.grad().clone());
        parameter.mutable_grad().fill_(123.0f);  // the fused step must overwrite, not add
      }

      FusedConvDaeStep fused(*model, batch);
      const torch::Tensor fused_loss = fused.train_step(noisy, clean);
      EXPECT_NEAR(fused_loss.item<double>(), loss.item<double>(), kTolerance * loss.item<double>())
          << name_of(activation);
      EXPECT_LT(relative_error(fused.output(), model->forward(noisy).detach()), kTolerance);
      const auto names = model->named_parameters().keys();
      for (std::size_t i = 0; i < expected.size(); ++i)
        EXPECT_LT(relative_error(model->parameters()[i].grad(), expected[i]), kTolerance)
            << name_of(activation) << ", " << threads << " threads: " << names[i];
    }
  at::set_num_threads(threads_before);
}

// The threads split the samples, never a sum: loss and gradients have the same bits at any
// thread count (a batch of 50 splits into chunks differently at 1, 2 and 3 threads).
TEST(FusedConvDaeStep, GivesTheSameBitsAtAnyThreadCount) {
  const int threads_before = at::get_num_threads();
  torch::manual_seed(6);
  ConvDae model(Activation::kRelu);
  init_xavier(*model, 0.05);
  const std::int64_t batch = 50;
  const torch::Tensor clean = torch::rand({batch, 1, 28, 28});
  const torch::Tensor noisy = clean + 0.5 * torch::randn_like(clean);
  FusedConvDaeStep fused(*model, batch);
  std::vector<torch::Tensor> first;
  torch::Tensor first_loss;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    const torch::Tensor loss = fused.train_step(noisy, clean).clone();
    std::vector<torch::Tensor> gradients;
    for (const auto& parameter : model->parameters()) gradients.push_back(parameter.grad().clone());
    if (first.empty()) {
      first = gradients;
      first_loss = loss;
      continue;
    }
    EXPECT_TRUE(torch::equal(loss, first_loss)) << threads << " threads";
    for (std::size_t i = 0; i < gradients.size(); ++i)
      EXPECT_TRUE(torch::equal(gradients[i], first[i]))
          << threads << " threads: " << model->named_parameters().keys()[i];
  }
  at::set_num_threads(threads_before);
}

TEST(FusedConvDaeStep, ForwardMatchesTheModuleForAnyNumberOfImages) {
  torch::manual_seed(5);
  ConvDae model(Activation::kRelu);
  FusedConvDaeStep fused(*model, 16);
  for (std::int64_t count : {1, 16, 37}) {  // less than, exactly and more than one batch
    const torch::Tensor images = torch::rand({count, 1, 28, 28});
    const torch::Tensor output = fused.forward(images);
    ASSERT_EQ(output.sizes(), images.sizes());
    EXPECT_LT(relative_error(output, model->forward(images).detach()), kTolerance) << count;
  }
}

// The evaluation counts dead channels from the fused forward's own pass: its peaks must be the
// module's, over images that span several parts, with a channel killed in two layers.
TEST(FusedConvDaeStep, ForwardGivesTheModulesChannelPeaks) {
  for (const Activation activation : {Activation::kRelu, Activation::kNone}) {
    torch::manual_seed(6);
    ConvDae model(activation);
    init_xavier(*model, 0.05);
    {
      torch::NoGradGuard no_grad;
      model->encoder1->bias[3].fill_(-100.0);  // encoder1's channel 3: never above 0
      model->encoder2->bias[7].fill_(-100.0);
    }
    FusedConvDaeStep fused(*model, 50);  // parts of 25: 60 images are three parts
    const torch::Tensor images = torch::rand({60, 1, 28, 28});
    torch::Tensor peaks;
    fused.forward(images, &peaks);
    const torch::Tensor expected = channel_peaks(*model, images);
    ASSERT_EQ(peaks.sizes(), expected.sizes());
    EXPECT_EQ(peaks.size(0), activation == Activation::kRelu ? 16 + 32 + 16 + 1 : 16 + 32 + 16);
    EXPECT_LT(relative_error(peaks, expected), kTolerance);
    EXPECT_TRUE(torch::equal(peaks.le(0), expected.le(0)));
    EXPECT_EQ(peaks[3].item<float>(), 0.0f);
    EXPECT_EQ(peaks[16 + 7].item<float>(), 0.0f);
    EXPECT_EQ(peaks.le(0).sum().item<std::int64_t>(), 2);
  }
}

TEST(FusedConvDaeStep, RefusesAWrongBatch) {
  ConvDae model;
  FusedConvDaeStep fused(*model, 4);
  const torch::Tensor wrong = torch::rand({5, 1, 28, 28});
  EXPECT_THROW(fused.train_step(wrong, wrong), Error);
}

TEST(MakeFusedStep, FollowsTheKernelsOption) {
  Config config;
  ConvDae conv;
  MlpDae mlp;
  // auto, conv, CPU: fused where the CPU has a SIMD variant; the generic loops are slower than
  // LibTorch's oneDNN kernels, so there auto takes LibTorch's.
  const bool simd = kernels::current_isa() != kernels::Isa::kGeneric;
  EXPECT_EQ(make_fused_step(config, *conv, 8) != nullptr, simd) << kernels::isa();
  EXPECT_EQ(make_fused_step(config, *mlp, 8), nullptr);   // auto falls back to LibTorch
  config.kernels = KernelChoice::kLibtorch;
  EXPECT_EQ(make_fused_step(config, *conv, 8), nullptr);
  config.kernels = KernelChoice::kFused;  // insists, whatever the variant
  EXPECT_NE(make_fused_step(config, *conv, 8), nullptr);
  config.model.kind = ModelKind::kMlp;
  try {
    make_fused_step(config, *mlp, 8);
    FAIL() << "kernels = fused accepted the mlp model";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("kernels: 'fused' runs the conv model"),
              std::string::npos)
        << error.what();
  }
  // The fused kernels compute in fp32: bf16 means LibTorch's kernels, or an error with fused.
  config.model.kind = ModelKind::kConv;
  config.precision = Precision::kBf16;
  try {
    make_fused_step(config, *conv, 8);
    FAIL() << "kernels = fused accepted precision = bf16";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("precision = bf16"), std::string::npos)
        << error.what();
  }
  config.kernels = KernelChoice::kAuto;
  EXPECT_EQ(make_fused_step(config, *conv, 8), nullptr);
}

}  // namespace
}  // namespace dae
