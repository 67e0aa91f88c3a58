#include "dae/model/inference.hpp"

#include <ATen/Parallel.h>

#include <algorithm>

#include "dae/core/error.hpp"
#include "dae/model/fused_conv_dae.hpp"

namespace dae {

namespace {

// A thread's share of a forward pass goes through it in chunks of about this many input pixels
// (8 MNIST digits, as the training step's chunks): a chunk's activations and im2col rows
// (≈ 290 bytes per pixel) then stay in the core's L2 cache from one layer to the next. A window
// larger than that is one chunk on its own.
constexpr std::int64_t kChunkPixels = 8 * 28 * 28;
// The floats ConvForwardBuffers needs per input pixel: 25/4 + 16/4 + 400/16 + 32/16 + 400/16 +
// 16/4 + 25/4 (see its fields), times 4 to stay whole.
constexpr std::int64_t kBufferFloatsPer4Pixels = 290;

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

// A thread's ConvForwardBuffers for `pixels` input pixels, grown once to the largest chunk and
// then reused (one forward pass after another allocates nothing).
ConvForwardBuffers thread_buffers(std::int64_t pixels) {
  thread_local std::vector<float> storage;
  const std::size_t floats = static_cast<std::size_t>(pixels / 4 * kBufferFloatsPer4Pixels);
  if (storage.size() < floats) storage.resize(floats);
  float* next = storage.data();
  auto take = [&](std::int64_t count) {
    float* start = next;
    next += count;
    return start;
  };
  const std::int64_t fine = pixels / 4, coarse = pixels / 16;
  ConvForwardBuffers buffers{};
  buffers.image_rows = take(fine * 25);
  buffers.hidden1 = take(fine * 16);
  buffers.hidden1_rows = take(coarse * 400);
  buffers.code = take(coarse * 32);
  buffers.coarse_cols = take(coarse * 400);
  buffers.hidden3 = take(fine * 16);
  buffers.fine_cols = take(fine * 25);
  return buffers;
}

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

torch::Tensor ImageDenoiser::forward_fused(const torch::Tensor& batch) {
  const ConvForwardWeights weights(model_);
  const int height = static_cast<int>(batch.size(1)), width = static_cast<int>(batch.size(2));
  const std::int64_t image_pixels = static_cast<std::int64_t>(height) * width;
  const std::int64_t chunk = std::max<std::int64_t>(1, kChunkPixels / image_pixels);
  torch::Tensor output = torch::empty_like(batch);
  const float* input = batch.data_ptr<float>();
  float* result = output.data_ptr<float>();
  // Each image depends on itself alone: the threads take equal shares of the batch.
  at::parallel_for(0, batch.size(0), 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t first = begin; first < end; first += chunk) {
      const int samples = static_cast<int>(std::min(chunk, end - first));
      fused_forward(weights, input + first * image_pixels, samples, height, width,
                    thread_buffers(samples * image_pixels), result + first * image_pixels);
    }
  });
  return output;
}

torch::Tensor ImageDenoiser::forward(const torch::Tensor& padded) {
  torch::InferenceMode inference;
  std::vector<torch::Tensor> outputs;
  for (std::int64_t first = 0; first < padded.size(0); first += options_.batch) {
    const torch::Tensor batch =
        padded.narrow(0, first, std::min<std::int64_t>(options_.batch, padded.size(0) - first))
            .contiguous();
    if (options_.fused)
      outputs.push_back(forward_fused(batch));
    else
      outputs.push_back(model_.forward(batch.unsqueeze(1).to(device_)).squeeze(1).cpu());
  }
  return torch::cat(outputs);
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
  torch::Tensor padded = images;
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
