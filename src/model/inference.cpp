#include "dae/model/inference.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "dae/core/error.hpp"
#include "dae/model/cpu_kernels.hpp"
#include "dae/model/fused_conv_dae.hpp"

namespace dae {

namespace {

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

// The forward pass of one image, row by row, with dae::kernels: each convolution is a matrix
// product per output row, on that row's 5x5 patches gathered from a zero-bordered copy of its
// input (one row of im2col at a time), and each transposed convolution a product per input row
// whose columns are added into the output rows they reach. What stays in memory is the layers'
// activations, ≈ 12 floats per input pixel against the 72 of the training step's layer-at-a-time
// forward (FusedConvDaeStep), so a large image streams through the caches instead of writing and
// reading 25-fold copies of its layers (a 1024 x 1024 image: 38 ms, against 81 ms that way, at
// 2 threads on a 2-core AMD EPYC, 2026-12-07: docs/inference-speed.md). The sums run in
// FusedConvDaeStep's order, so digits get the training forward's bits.
class StreamedForward {
 public:
  StreamedForward(const ConvForwardWeights& weights, int height, int width)
      : weights_(weights), height_(height), width_(width) {}

  void run(const float* image, float* output) {
    const int fine_width = width_ + 4, half_width = width_ / 2 + 4;
    const std::size_t image_floats = static_cast<std::size_t>(height_ + 4) * fine_width;
    const std::size_t half_floats = static_cast<std::size_t>(height_ / 2 + 4) * half_width * 16;
    const std::size_t code_floats = static_cast<std::size_t>(height_ / 4) * (width_ / 4) * 32;
    thread_local std::vector<float> storage;
    const std::size_t total = 2 * image_floats + 2 * half_floats + code_floats +
                              static_cast<std::size_t>(width_ / 4) * 400;
    if (storage.size() < total) storage.resize(total);
    float* padded_image = storage.data();
    float* hidden1 = padded_image + image_floats;  // zero-bordered, (H/2 + 4) x (W/2 + 4) x 16
    float* code = hidden1 + half_floats;           // H/4 x W/4 x 32
    float* hidden3 = code + code_floats;           // accumulated with the same border
    float* padded_output = hidden3 + half_floats;
    float* columns = padded_output + image_floats;  // one row's transposed-convolution columns
    std::fill(padded_image, padded_image + image_floats, 0.0f);
    for (int y = 0; y < height_; ++y)
      std::copy(image + static_cast<std::int64_t>(y) * width_,
                image + static_cast<std::int64_t>(y + 1) * width_,
                padded_image + static_cast<std::int64_t>(y + 2) * fine_width + 2);
    std::fill(hidden1, hidden1 + half_floats, 0.0f);
    // encoder1 into hidden1's interior, encoder2 into the code.
    convolve(padded_image, fine_width, 1, height_ / 2, weights_.enc1, weights_.bias1, 16, columns,
             [&](int row) { return hidden1 + (static_cast<std::int64_t>(row + 2) * half_width + 2) * 16; });
    convolve(hidden1, half_width, 16, height_ / 4, weights_.enc2, weights_.bias2, 32, columns,
             [&](int row) { return code + static_cast<std::int64_t>(row) * (width_ / 4) * 32; });
    // decoder1 and decoder2 add into zero-bordered outputs whose interiors are the layers'.
    std::fill(hidden3, hidden3 + half_floats, 0.0f);
    transpose_convolve(code, width_ / 4 * 32, height_ / 4, width_ / 4, 32, weights_.dec1, 16,
                       hidden3, half_width, columns);
    float* hidden3_interior = hidden3 + (2 * static_cast<std::int64_t>(half_width) + 2) * 16;
    for (int y = 0; y < height_ / 2; ++y)
      kernels::relu(hidden3_interior + static_cast<std::int64_t>(y) * half_width * 16,
                    static_cast<std::int64_t>(width_ / 2) * 16);
    std::fill(padded_output, padded_output + image_floats, 0.0f);
    transpose_convolve(hidden3_interior, static_cast<std::int64_t>(half_width) * 16, height_ / 2,
                       width_ / 2, 16, weights_.dec2, 1, padded_output, fine_width, columns);
    for (int y = 0; y < height_; ++y) {
      const float* row = padded_output + static_cast<std::int64_t>(y + 2) * fine_width + 2;
      std::copy(row, row + width_, output + static_cast<std::int64_t>(y) * width_);
    }
    finish_output(output, static_cast<std::int64_t>(height_) * width_);
  }

 private:
  // A 5x5 stride-2 convolution of a zero-bordered input (`padded_width` pixels a row, `in`
  // channels) into `rows` output rows, each + bias, ReLU; `patches` holds one row's im2col.
  template <typename RowStart>
  void convolve(const float* padded, int padded_width, int in, int rows, const torch::Tensor& p,
                const float* bias, int out, float* patches, const RowStart& row_start) {
    const int columns = (padded_width - 4) / 2, run = 5 * in, depth = 25 * in;
    for (int row = 0; row < rows; ++row) {
      // The row's 5x5 patches side by side (one row of im2col at a time: it stays in L1/L2).
      for (int x = 0; x < columns; ++x)
        for (int ky = 0; ky < 5; ++ky) {
          const float* source =
              padded + (static_cast<std::int64_t>(2 * row + ky) * padded_width + 2 * x) * in;
          std::copy(source, source + run, patches + static_cast<std::int64_t>(x) * depth + ky * run);
        }
      float* target = row_start(row);
      kernels::gemm(columns, out, depth, patches, depth, 1, p.data_ptr<float>(), out, target, out,
                    false);
      kernels::add_bias_relu(target, columns, out, bias);
    }
  }

  // A 5x5 stride-2 transposed convolution of `rows` x `width` inputs (`in` channels, rows
  // `row_stride` floats apart) added into a zero-bordered output of `out` channels,
  // `padded_width` pixels a row: input pixel (y, x) reaches output rows 2y..2y+4 (bordered).
  void transpose_convolve(const float* input, std::int64_t row_stride, int rows, int width,
                          int in, const torch::Tensor& q, int out, float* padded,
                          int padded_width, float* columns) {
    const int run = 5 * out;  // one kernel row's taps
    for (int y = 0; y < rows; ++y) {
      kernels::gemm(width, 25 * out, in, input + y * row_stride, in, 1, q.data_ptr<float>(),
                    25 * out, columns, 25 * out, false);
      for (int x = 0; x < width; ++x)
        for (int ky = 0; ky < 5; ++ky) {
          float* target =
              padded + (static_cast<std::int64_t>(2 * y + ky) * padded_width + 2 * x) * out;
          const float* source = columns + static_cast<std::int64_t>(x) * 25 * out + ky * run;
          for (int i = 0; i < run; ++i) target[i] += source[i];
        }
    }
  }

  void finish_output(float* output, std::int64_t count) const {
    if (weights_.output_activation == Activation::kRelu) kernels::relu(output, count);
    if (weights_.output_activation == Activation::kSigmoid)
      for (std::int64_t i = 0; i < count; ++i) output[i] = 1.0f / (1.0f + std::exp(-output[i]));
  }

  const ConvForwardWeights& weights_;
  int height_, width_;
};

}  // namespace

AxisTiles tile_axis(int length, int max_tile) {
  DAE_CHECK(length > 0 && length % kNetworkStride == 0,
            "tile_axis: the length must be a positive multiple of the network's stride");
  AxisTiles tiles;
  if (max_tile == 0 || length <= max_tile) {
    tiles.size = length;
    tiles.origin = {0};
    tiles.keep_begin = {0};
    tiles.keep_end = {length};
    return tiles;
  }
  DAE_CHECK(max_tile % kNetworkStride == 0 && max_tile > 2 * kTileMargin,
            "tile_axis: a tile must be a multiple of 4 wider than both margins");
  // Each window keeps its core (all but a margin on each side; the image's own edges need no
  // margin): the fewest cores of at most max_tile - 2 margins that cover the length, of equal
  // size rounded up to the stride so that every origin stays on the network's grid.
  const int inner = length - 2 * kTileMargin, widest_core = max_tile - 2 * kTileMargin;
  const int count = (inner + widest_core - 1) / widest_core;
  const int core = round_up((inner + count - 1) / count, kNetworkStride);
  tiles.size = core + 2 * kTileMargin;
  for (int i = 0; i < count; ++i) {
    // The last window ends at the image's edge (it may overlap the one before more).
    tiles.origin.push_back(std::min(i * core, length - tiles.size));
    tiles.keep_begin.push_back(i == 0 ? 0 : tiles.origin.back() + kTileMargin);
  }
  for (int i = 0; i < count; ++i)
    tiles.keep_end.push_back(i + 1 < count ? tiles.keep_begin[i + 1] : length);
  return tiles;
}

ImageDenoiser::ImageDenoiser(ConvDaeImpl& model, DenoiserOptions options)
    : model_(model), options_(options), device_(device_of(model)) {
  DAE_CHECK(options.batch > 0, "ImageDenoiser: batch must be > 0");
  if (options_.fused && !device_.is_cpu()) options_.fused = false;  // the kernels are CPU code
}

void ImageDenoiser::forward_fused(const ConvForwardWeights& weights, const torch::Tensor& batch,
                                  torch::Tensor& output) {
  const int height = static_cast<int>(batch.size(1)), width = static_cast<int>(batch.size(2));
  const std::int64_t image_pixels = static_cast<std::int64_t>(height) * width;
  const float* input = batch.data_ptr<float>();
  float* result = output.data_ptr<float>();
  // Each image depends on itself alone: the threads take equal shares of the batch.
  at::parallel_for(0, batch.size(0), 1, [&](std::int64_t begin, std::int64_t end) {
    StreamedForward streamed(weights, height, width);
    for (std::int64_t image = begin; image < end; ++image)
      streamed.run(input + image * image_pixels, result + image * image_pixels);
  });
}

torch::Tensor ImageDenoiser::forward(const torch::Tensor& padded) {
  torch::InferenceMode inference;
  torch::Tensor output = torch::empty_like(padded);
  const std::optional<ConvForwardWeights> weights =
      options_.fused ? std::optional<ConvForwardWeights>(model_) : std::nullopt;
  for (std::int64_t first = 0; first < padded.size(0); first += options_.batch) {
    const std::int64_t count = std::min<std::int64_t>(options_.batch, padded.size(0) - first);
    const torch::Tensor batch = padded.narrow(0, first, count);  // contiguous: rows of padded
    torch::Tensor result = output.narrow(0, first, count);
    if (weights)
      forward_fused(*weights, batch, result);
    else
      result.copy_(model_.forward(batch.unsqueeze(1).to(device_)).squeeze(1));
  }
  return output;
}

torch::Tensor ImageDenoiser::denoise(const torch::Tensor& images) {
  DAE_CHECK(images.dim() == 3 && images.scalar_type() == torch::kFloat32 &&
                images.size(1) >= kMinImageSide && images.size(2) >= kMinImageSide,
            "ImageDenoiser: expected float [N, H, W] images of at least 4 x 4");
  torch::InferenceMode inference;
  const int height = static_cast<int>(images.size(1)), width = static_cast<int>(images.size(2));
  const int padded_height = round_up(height, kNetworkStride);
  const int padded_width = round_up(width, kNetworkStride);
  // Reflection (not zeros) continues the image's texture and brightness into the padding, so the
  // edge pixels see what they would inside a larger image.
  torch::Tensor padded = images.contiguous();
  if (padded_height != height || padded_width != width)
    padded = torch::nn::functional::pad(
                 images.unsqueeze(1),
                 torch::nn::functional::PadFuncOptions({0, padded_width - width, 0,
                                                        padded_height - height})
                     .mode(torch::kReflect))
                 .squeeze(1);
  const AxisTiles rows = tile_axis(padded_height, options_.tile);
  const AxisTiles columns = tile_axis(padded_width, options_.tile);
  torch::Tensor output;
  if (rows.origin.size() == 1 && columns.origin.size() == 1) {
    output = forward(padded);
  } else {
    // Every window of every image, one batch of equal-size tiles; each writes its kept part.
    std::vector<torch::Tensor> windows;
    for (std::int64_t image = 0; image < padded.size(0); ++image)
      for (int y : rows.origin)
        for (int x : columns.origin)
          windows.push_back(padded[image].narrow(0, y, rows.size).narrow(1, x, columns.size));
    const torch::Tensor denoised = forward(torch::stack(windows));
    output = torch::empty_like(padded);
    std::int64_t window = 0;
    for (std::int64_t image = 0; image < padded.size(0); ++image)
      for (std::size_t r = 0; r < rows.origin.size(); ++r)
        for (std::size_t c = 0; c < columns.origin.size(); ++c, ++window) {
          const int top = rows.keep_begin[r], left = columns.keep_begin[c];
          const int kept_rows = rows.keep_end[r] - top, kept_columns = columns.keep_end[c] - left;
          output[image]
              .narrow(0, top, kept_rows)
              .narrow(1, left, kept_columns)
              .copy_(denoised[window]
                         .narrow(0, top - rows.origin[r], kept_rows)
                         .narrow(1, left - columns.origin[c], kept_columns));
        }
  }
  return output.narrow(1, 0, height).narrow(2, 0, width).contiguous();
}

}  // namespace dae
