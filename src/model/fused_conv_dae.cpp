#include "dae/model/fused_conv_dae.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "dae/core/config.hpp"
#include "dae/model/cpu_kernels.hpp"
#include "dae/core/error.hpp"

namespace dae {

namespace {

// The seed network's grid: 28x28 image, 14x14x16, 7x7x32 code, 14x14x16, 28x28.
constexpr std::int64_t kImagePixels = 28 * 28, kFinePixels = 14 * 14, kCodePixels = 7 * 7;
constexpr int kHidden = 16, kCode = 32, kTaps = kernels::kTaps;

torch::Tensor buffer(std::int64_t rows, std::int64_t columns) {
  return torch::zeros({rows, columns}, torch::kFloat32);
}

float* rows_of(const torch::Tensor& matrix, std::int64_t first_row) {
  return matrix.data_ptr<float>() + first_row * matrix.size(1);
}

// Runs chunk(first_sample, samples) over the batch, spread over LibTorch's intra-op threads
// (CMakeLists.txt: this file is built with OpenMP, or at::parallel_for runs serially): each
// thread takes an equal share of the samples (50 at 2 threads: 25 + 25, where whole chunks of 8
// gave 32 + 18) and goes through it in near-equal chunks of at most kChunkSamples. Each sample's
// activations depend on that sample alone, so chunks never wait for each other, and a chunk's
// activations, im2col rows and gradients (≈ 260 kB per sample) stay in the core's L2 cache from
// one layer to the next.
constexpr std::int64_t kChunkSamples = 8;

// Where piece `i` of [begin, begin + length) cut into `pieces` near-equal pieces starts (piece
// lengths differ by at most one; piece `pieces` starts at the end).
std::int64_t piece_start(std::int64_t begin, std::int64_t length, std::int64_t pieces,
                         std::int64_t i) {
  return begin + length * i / pieces;
}

template <typename Chunk>
void over_samples(std::int64_t batch, const Chunk& chunk) {
  at::parallel_for(0, batch, 1, [&](std::int64_t begin, std::int64_t end) {
    const std::int64_t share = end - begin, chunks = (share + kChunkSamples - 1) / kChunkSamples;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t first = piece_start(begin, share, chunks, c);
      chunk(first, static_cast<int>(piece_start(begin, share, chunks, c + 1) - first));
    }
  });
}

// Raises peaks[c] to the largest value of column c of the [rows, kCols] row-major matrix.
template <int kCols>
void raise_to_column_peaks(const float* matrix, std::int64_t rows, float* peaks) {
  float peak[kCols];
  std::copy(peaks, peaks + kCols, peak);
  for (std::int64_t row = 0; row < rows; ++row, matrix += kCols)
    for (int c = 0; c < kCols; ++c) peak[c] = std::max(peak[c], matrix[c]);
  std::copy(peak, peak + kCols, peaks);
}

// coarse = im2col(fine) @ p: a 5x5 stride-2 convolution of `samples` images of `fine_height` x
// `fine_width` (or a transposed convolution's input gradient); p is [25 * in, out], `columns`
// receives the im2col rows (kept where a weight gradient needs them).
void down(const float* fine, int samples, int fine_height, int fine_width, int in, float* columns,
          const torch::Tensor& p, float* coarse) {
  const int width = kTaps * in, out = static_cast<int>(p.size(1));
  const std::int64_t rows =
      static_cast<std::int64_t>(samples) * (fine_height / 2) * (fine_width / 2);
  kernels::im2col(fine, samples, fine_height, fine_width, in, columns, width);
  kernels::gemm(rows, out, width, columns, width, 1, p.data_ptr<float>(), out, coarse, out, false);
}

// fine = col2im(coarse @ q): the transposed convolution back to `fine_height` x `fine_width` (or
// a convolution's input gradient); q is [in, 25 * out], `columns` is scratch for the product.
void up(const float* coarse, int samples, int fine_height, int fine_width, const torch::Tensor& q,
        float* columns, float* fine) {
  const int in = static_cast<int>(q.size(0)), width = static_cast<int>(q.size(1));
  const std::int64_t rows =
      static_cast<std::int64_t>(samples) * (fine_height / 2) * (fine_width / 2);
  kernels::gemm(rows, width, in, coarse, in, 1, q.data_ptr<float>(), width, columns, width, false);
  kernels::col2im(columns, samples, fine_height, fine_width, width / kTaps, width, fine);
}

// c[rows, cols] (+)= a(m, k) @ b[depth, cols] (see kernels::gemm) for a weight gradient: a sum
// over a part of the batch (depth), continued over the parts. The threads split c, never the
// sum, so each number is one thread's whole sum in the same order at any thread count: by
// columns in blocks of 16 when c is wide (decoder1's 400), else by rows in equal shares
// (encoder2's 400; decoder2's 16 and encoder1's 25 split 8 + 8 and 13 + 12 at 2 threads, where
// blocks of 12 rows gave 12 + 4 and 24 + 1).
void weight_gradient(int rows, int cols, std::int64_t depth, const float* a,
                     std::int64_t a_row_step, std::int64_t a_depth_step, const float* b,
                     float* c, bool accumulate) {
  constexpr int kColumnBlock = 16;
  if (cols > 2 * kColumnBlock) {
    const std::int64_t blocks = (cols + kColumnBlock - 1) / kColumnBlock;
    at::parallel_for(0, blocks, 1, [&](std::int64_t begin, std::int64_t end) {
      const int first = static_cast<int>(begin) * kColumnBlock;
      const int last = std::min(cols, static_cast<int>(end) * kColumnBlock);
      kernels::gemm(rows, last - first, depth, a, a_row_step, a_depth_step, b + first, cols,
                    c + first, cols, accumulate);
    });
  } else {
    at::parallel_for(0, rows, 1, [&](std::int64_t begin, std::int64_t end) {
      kernels::gemm(end - begin, cols, depth, a + begin * a_row_step, a_row_step, a_depth_step,
                    b, cols, c + begin * cols, cols, accumulate);
    });
  }
}

// Where fused_forward leaves each layer of `samples` images of H x W (NHWC rows), and its
// scratch; sizes in floats, with pixels = samples * H * W.
struct ConvForwardBuffers {
  float* image_rows;    // [pixels / 4, 25]     im2col of the input
  float* hidden1;       // [pixels / 4, 16]     after encoder1 + ReLU
  float* hidden1_rows;  // [pixels / 16, 400]   im2col of hidden1
  float* code;          // [pixels / 16, 32]    the code
  float* coarse_cols;   // [pixels / 16, 400]   decoder1's columns
  float* hidden3;       // [pixels / 4, 16]     after decoder1 + ReLU
  float* fine_cols;     // [pixels / 4, 25]     decoder2's columns
};

}  // namespace

// A step goes through the batch in equal parts of at most kPartSamples, each part forward and
// back before the next: a part's activations, im2col rows and gradients (≈ 260 kB per sample)
// are what stays in the caches through the step, and at 25 samples a step ran 20-35 % faster
// per sample than at 50 (README, "CPU speed"). The weight and bias gradients continue their
// sums from one part to the next in sample order, so the parts change no bit of the result.
constexpr std::int64_t kPartSamples = 25;

FusedConvDaeStep::FusedConvDaeStep(ConvDaeImpl& model, std::int64_t batch)
    : model_(model), batch_(batch), forward_(model) {
  DAE_CHECK(batch > 0, "FusedConvDaeStep: batch must be > 0");
  kernels::isa();  // chooses the kernel variant now: a refused DAE_CPU_ISA fails at start
  for (const auto& parameter : model_.parameters())
    DAE_CHECK(parameter.device().is_cpu() && parameter.scalar_type() == torch::kFloat32,
              "FusedConvDaeStep: the model must hold float32 parameters on the CPU");
  parts_ = (batch + kPartSamples - 1) / kPartSamples;
  part_samples_ = (batch + parts_ - 1) / parts_;
  enc2_t_ = buffer(kCode, kTaps * kHidden);
  dec1_t_ = buffer(kTaps * kHidden, kCode);
  dec2_t_ = buffer(kTaps, kHidden);
  enc1_grad_ = torch::zeros_like(forward_.enc1);
  enc2_grad_ = torch::zeros_like(forward_.enc2);
  dec1_grad_ = torch::zeros_like(forward_.dec1);
  dec2_grad_ = torch::zeros_like(forward_.dec2);
  image_rows_ = buffer(part_samples_ * kFinePixels, kTaps);
  hidden1_ = buffer(part_samples_ * kFinePixels, kHidden);
  hidden1_rows_ = buffer(part_samples_ * kCodePixels, kTaps * kHidden);
  code_ = buffer(part_samples_ * kCodePixels, kCode);
  coarse_cols_ = buffer(part_samples_ * kCodePixels, kTaps * kHidden);
  hidden3_ = buffer(part_samples_ * kFinePixels, kHidden);
  fine_cols_ = buffer(part_samples_ * kFinePixels, kTaps);
  output_ = buffer(batch, kImagePixels);
  output_grad_ = buffer(part_samples_, kImagePixels);
  hidden3_grad_ = torch::zeros_like(hidden3_);
  code_grad_ = torch::zeros_like(code_);
  hidden1_grad_ = torch::zeros_like(hidden1_);
  sample_squares_.assign(static_cast<std::size_t>(batch), 0.0);
  loss_ = torch::zeros({}, torch::kFloat32);
}

// Layouts (tap = 5 ky + kx): a convolution's P[tap * in + i][o] = W[o][i][ky][kx] (Conv2d: W is
// [out, in, 5, 5]); a transposed one's Q[i][tap * out + o] = W[i][o][ky][kx] (ConvTranspose2d:
// [in, out, 5, 5]); the backward passes use their transposes.
ConvForwardWeights::ConvForwardWeights(const ConvDaeImpl& model)
    : enc1(buffer(kTaps, kHidden)),
      enc2(buffer(kTaps * kHidden, kCode)),
      dec1(buffer(kCode, kTaps * kHidden)),
      dec2(buffer(kHidden, kTaps)) {
  pack(model);
}

void ConvForwardWeights::pack(const ConvDaeImpl& model) {
  enc1.view({5, 5, 1, kHidden}).copy_(model.encoder1->weight.permute({2, 3, 1, 0}));
  enc2.view({5, 5, kHidden, kCode}).copy_(model.encoder2->weight.permute({2, 3, 1, 0}));
  dec1.view({kCode, 5, 5, kHidden}).copy_(model.decoder1->weight.permute({0, 2, 3, 1}));
  dec2.view({kHidden, 5, 5, 1}).copy_(model.decoder2->weight.permute({0, 2, 3, 1}));
  bias1 = model.encoder1->bias.data_ptr<float>();
  bias2 = model.encoder2->bias.data_ptr<float>();
  output_activation = model.output_activation;
}

// The network's output for `samples` images [samples, H, W] into `output`, on the calling
// thread: the step's forward pass, layer by layer with dae::kernels.
static void fused_forward(const ConvForwardWeights& weights, const float* images, int samples,
                          int height, int width, const ConvForwardBuffers& buffers,
                          float* output) {
  const std::int64_t pixels = static_cast<std::int64_t>(samples) * height * width;
  const std::int64_t fine_rows = pixels / 4, code_rows = pixels / 16;
  const int half_height = height / 2, half_width = width / 2;
  // encoder1: H x W x 1 -> H/2 x W/2 x 16; encoder2: -> H/4 x W/4 x 32 (the code)
  down(images, samples, height, width, 1, buffers.image_rows, weights.enc1, buffers.hidden1);
  kernels::add_bias_relu(buffers.hidden1, fine_rows, kHidden, weights.bias1);
  down(buffers.hidden1, samples, half_height, half_width, kHidden, buffers.hidden1_rows,
       weights.enc2, buffers.code);
  kernels::add_bias_relu(buffers.code, code_rows, kCode, weights.bias2);
  // decoder1: -> H/2 x W/2 x 16; decoder2: -> H x W x 1
  up(buffers.code, samples, half_height, half_width, weights.dec1, buffers.coarse_cols,
     buffers.hidden3);
  kernels::relu(buffers.hidden3, fine_rows * kHidden);
  up(buffers.hidden3, samples, height, width, weights.dec2, buffers.fine_cols, output);
  if (weights.output_activation == Activation::kRelu) kernels::relu(output, pixels);
  if (weights.output_activation == Activation::kSigmoid)
    for (std::int64_t i = 0; i < pixels; ++i) output[i] = 1.0f / (1.0f + std::exp(-output[i]));
}

void FusedConvDaeStep::pack_weights() {
  forward_.pack(model_);
  const torch::Tensor w2 = model_.encoder2->weight, w3 = model_.decoder1->weight;
  const torch::Tensor w4 = model_.decoder2->weight;
  enc2_t_.view({kCode, 5, 5, kHidden}).copy_(w2.permute({0, 2, 3, 1}));
  dec1_t_.view({5, 5, kHidden, kCode}).copy_(w3.permute({2, 3, 1, 0}));
  dec2_t_.view({5, 5, 1, kHidden}).copy_(w4.permute({2, 3, 1, 0}));
}

void FusedConvDaeStep::run_forward(const float* images, std::int64_t samples_in_part,
                                   float* outputs) {
  over_samples(samples_in_part, [&](std::int64_t first, int samples) {
    const ConvForwardBuffers buffers{rows_of(image_rows_, first * kFinePixels),
                                     rows_of(hidden1_, first * kFinePixels),
                                     rows_of(hidden1_rows_, first * kCodePixels),
                                     rows_of(code_, first * kCodePixels),
                                     rows_of(coarse_cols_, first * kCodePixels),
                                     rows_of(hidden3_, first * kFinePixels),
                                     rows_of(fine_cols_, first * kFinePixels)};
    fused_forward(forward_, images + first * kImagePixels, samples, 28, 28, buffers,
                  outputs + first * kImagePixels);
  });
}

// Each sample's squared error against `clean` (summed on its thread into sample_squares_, from
// `first` on), and the gradient of the batch's mean squared error with respect to the output
// layer's input, for the `samples` of the part.
void FusedConvDaeStep::compute_loss(const float* clean, std::int64_t first_in_batch,
                                    std::int64_t samples_in_part) {
  const float* output = rows_of(output_, first_in_batch);
  clean += first_in_batch * kImagePixels;
  float* output_grad = output_grad_.data_ptr<float>();
  const float scale = 2.0f / static_cast<float>(batch_ * kImagePixels);
  const Activation activation = model_.output_activation;
  over_samples(samples_in_part, [&](std::int64_t first, int samples) {
    for (std::int64_t sample = first; sample < first + samples; ++sample) {
      double squares = 0;
      for (std::int64_t i = sample * kImagePixels; i < (sample + 1) * kImagePixels; ++i) {
        const float error = output[i] - clean[i];
        squares += static_cast<double>(error) * error;
        float grad = scale * error;
        if (activation == Activation::kRelu && output[i] <= 0.0f) grad = 0.0f;
        if (activation == Activation::kSigmoid) grad *= output[i] * (1.0f - output[i]);
        output_grad[i] = grad;
      }
      sample_squares_[static_cast<std::size_t>(first_in_batch + sample)] = squares;
    }
  });
}

// The gradients of one part layer by layer from the output back, added to the sums of the parts
// before it unless it is the first. Two passes over the samples with the weight gradients
// between them, because the second pass reuses coarse_cols_ once decoder1's gradient has read
// it. The bias gradients are summed into the parameters' grad() (zeroed by train_step).
void FusedConvDaeStep::backward_part(std::int64_t samples_in_part, bool continue_sums) {
  float* output_grad = output_grad_.data_ptr<float>();
  over_samples(samples_in_part, [&](std::int64_t first, int samples) {
    // decoder2: d hidden3 = im2col(d output) @ dec2^T; decoder1: d code = im2col(d hidden3) @
    // dec1^T. The im2col rows stay in fine_cols_ / coarse_cols_ for the weight gradients.
    float* hidden3_grad = rows_of(hidden3_grad_, first * kFinePixels);
    float* code_grad = rows_of(code_grad_, first * kCodePixels);
    down(output_grad + first * kImagePixels, samples, 28, 28, 1,
         rows_of(fine_cols_, first * kFinePixels), dec2_t_, hidden3_grad);
    kernels::relu_backward(hidden3_grad, rows_of(hidden3_, first * kFinePixels),
                           samples * kFinePixels * kHidden);
    down(hidden3_grad, samples, 14, 14, kHidden, rows_of(coarse_cols_, first * kCodePixels),
         dec1_t_, code_grad);
    kernels::relu_backward(code_grad, rows_of(code_, first * kCodePixels),
                           samples * kCodePixels * kCode);
  });
  // Transposed convolutions: dQ = input^T @ im2col(d output); convolutions: dP = im2col(input)^T
  // @ d output. "input^T" is a strided read of the row-major activations (a_row_step 1).
  const std::int64_t fine_rows = samples_in_part * kFinePixels;
  const std::int64_t code_rows = samples_in_part * kCodePixels;
  weight_gradient(kHidden, kTaps, fine_rows, hidden3_.data_ptr<float>(), 1, kHidden,
                  fine_cols_.data_ptr<float>(), dec2_grad_.data_ptr<float>(), continue_sums);
  weight_gradient(kCode, kTaps * kHidden, code_rows, code_.data_ptr<float>(), 1, kCode,
                  coarse_cols_.data_ptr<float>(), dec1_grad_.data_ptr<float>(), continue_sums);
  weight_gradient(kTaps * kHidden, kCode, code_rows, hidden1_rows_.data_ptr<float>(), 1,
                  kTaps * kHidden, code_grad_.data_ptr<float>(), enc2_grad_.data_ptr<float>(),
                  continue_sums);
  kernels::add_column_sums(code_grad_.data_ptr<float>(), code_rows, kCode,
                           model_.encoder2->bias.grad().data_ptr<float>());

  over_samples(samples_in_part, [&](std::int64_t first, int samples) {
    // encoder2: d hidden1 = col2im(d code @ enc2^T)
    float* hidden1_grad = rows_of(hidden1_grad_, first * kFinePixels);
    up(rows_of(code_grad_, first * kCodePixels), samples, 14, 14, enc2_t_,
       rows_of(coarse_cols_, first * kCodePixels), hidden1_grad);
    kernels::relu_backward(hidden1_grad, rows_of(hidden1_, first * kFinePixels),
                           samples * kFinePixels * kHidden);
  });
  weight_gradient(kTaps, kHidden, fine_rows, image_rows_.data_ptr<float>(), 1, kTaps,
                  hidden1_grad_.data_ptr<float>(), enc1_grad_.data_ptr<float>(), continue_sums);
  kernels::add_column_sums(hidden1_grad_.data_ptr<float>(), fine_rows, kHidden,
                           model_.encoder1->bias.grad().data_ptr<float>());
}

torch::Tensor FusedConvDaeStep::train_step(const torch::Tensor& noisy, const torch::Tensor& clean) {
  torch::NoGradGuard no_grad;
  const torch::Tensor images = noisy.contiguous(), targets = clean.contiguous();
  DAE_CHECK(images.numel() == batch_ * kImagePixels && targets.numel() == images.numel() &&
                images.scalar_type() == torch::kFloat32 && targets.scalar_type() == torch::kFloat32,
            "FusedConvDaeStep: expected float [" + std::to_string(batch_) + ", 1, 28, 28] batches");
  for (auto& parameter : model_.parameters())  // the trainer's are views of its flat buffer
    if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
  model_.encoder1->bias.mutable_grad().zero_();
  model_.encoder2->bias.mutable_grad().zero_();
  pack_weights();
  for (std::int64_t part = 0; part < parts_; ++part) {
    const std::int64_t first = piece_start(0, batch_, parts_, part);
    const std::int64_t next = piece_start(0, batch_, parts_, part + 1);
    run_forward(images.data_ptr<float>() + first * kImagePixels, next - first,
                rows_of(output_, first));
    compute_loss(targets.data_ptr<float>(), first, next - first);
    backward_part(next - first, part > 0);
  }
  double squares = 0;
  for (const double sample : sample_squares_) squares += sample;
  loss_.fill_(squares / static_cast<double>(batch_ * kImagePixels));

  // Back to the standard layouts (the inverse permutations of pack_weights).
  model_.encoder1->weight.mutable_grad().copy_(
      enc1_grad_.view({5, 5, 1, kHidden}).permute({3, 2, 0, 1}));
  model_.encoder2->weight.mutable_grad().copy_(
      enc2_grad_.view({5, 5, kHidden, kCode}).permute({3, 2, 0, 1}));
  model_.decoder1->weight.mutable_grad().copy_(
      dec1_grad_.view({kCode, 5, 5, kHidden}).permute({0, 3, 1, 2}));
  model_.decoder2->weight.mutable_grad().copy_(
      dec2_grad_.view({kHidden, 5, 5, 1}).permute({0, 3, 1, 2}));
  return loss_;
}

torch::Tensor FusedConvDaeStep::forward(const torch::Tensor& images, torch::Tensor* peaks) {
  torch::NoGradGuard no_grad;
  const torch::Tensor input = images.contiguous();
  DAE_CHECK(input.dim() == 4 && input.size(1) == 1 && input.size(2) == 28 && input.size(3) == 28 &&
                input.scalar_type() == torch::kFloat32,
            "FusedConvDaeStep: expected float [N, 1, 28, 28] images");
  pack_weights();
  torch::Tensor result = torch::empty_like(input);
  // ReLU outputs are >= 0, so peaks start from 0 (the channel order of channel_peaks).
  const bool relu_output = model_.output_activation == Activation::kRelu;
  if (peaks != nullptr) *peaks = torch::zeros({2 * kHidden + kCode + (relu_output ? 1 : 0)});
  for (std::int64_t first = 0; first < input.size(0); first += part_samples_) {
    const std::int64_t samples = std::min(part_samples_, input.size(0) - first);
    float* outputs = result.data_ptr<float>() + first * kImagePixels;
    run_forward(input.data_ptr<float>() + first * kImagePixels, samples, outputs);
    if (peaks == nullptr) continue;
    // The part's activations are still in the buffers (NHWC: a column per channel).
    float* peak = peaks->data_ptr<float>();
    raise_to_column_peaks<kHidden>(hidden1_.data_ptr<float>(), samples * kFinePixels, peak);
    raise_to_column_peaks<kCode>(code_.data_ptr<float>(), samples * kCodePixels, peak + kHidden);
    raise_to_column_peaks<kHidden>(hidden3_.data_ptr<float>(), samples * kFinePixels,
                                   peak + kHidden + kCode);
    if (relu_output)
      raise_to_column_peaks<1>(outputs, samples * kImagePixels, peak + 2 * kHidden + kCode);
  }
  return result;
}

torch::Tensor FusedConvDaeStep::output() const { return output_.view({batch_, 1, 28, 28}); }

std::unique_ptr<FusedConvDaeStep> make_fused_step(const Config& config, Denoiser& model,
                                                  std::int64_t batch) {
  if (config.kernels == KernelChoice::kLibtorch) return nullptr;
  // auto decides by ISA, not by timing steps at start (noisy on a shared node, and a different
  // choice per rank): the SIMD variants beat LibTorch's step at batch 50 (README, "CPU speed"),
  // the generic loops are 2-3.5x slower than it.
  if (config.kernels == KernelChoice::kAuto && kernels::current_isa() == kernels::Isa::kGeneric) return nullptr;
  if (config.precision != Precision::kFp32) {
    if (config.kernels == KernelChoice::kFused)
      throw Error("kernels: 'fused' computes in fp32; precision = " + name_of(config.precision) +
                  " needs kernels = libtorch or auto");
    return nullptr;
  }
  auto* conv = dynamic_cast<ConvDaeImpl*>(&model);
  const torch::Device device = model.parameters().front().device();
  if (conv != nullptr && device.is_cpu()) return std::make_unique<FusedConvDaeStep>(*conv, batch);
  if (config.kernels == KernelChoice::kFused)
    throw Error("kernels: 'fused' runs the conv model on the CPU only; this run has model '" +
                name_of(config.model.kind) + "' on " + device.str());
  return nullptr;
}

}  // namespace dae
