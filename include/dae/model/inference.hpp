// defines: dae::ImageDenoiser (a trained conv network applied to grayscale images of any size:
//          reflection padding to the network's stride, overlapping tiles for large images, the
//          fused CPU forward or LibTorch on any device), dae::AxisTiles, dae::tile_axis
#pragma once

#include <torch/torch.h>

#include <vector>

#include "dae/model/fused_conv_dae.hpp"
#include "dae/model/model.hpp"

namespace dae {

// The network halves each side twice and doubles it twice: it maps H x W to H x W when both are
// multiples of 4 (other sizes are padded up to them by reflection and cropped back).
inline constexpr int kNetworkStride = 4;
// Reflection needs a mirror: an image is at least this many pixels on each side.
inline constexpr int kMinImageSide = kNetworkStride;
// How far an output pixel sees: its value depends on input pixels at most 12 rows or columns
// away (5x5 kernels at strides 2, 4, 4 and 2: 2 + 4 + 2*2 + 2 = 12 on the finest grid). A tile
// keeps only what lies at least this far from a cut, so tiles join exactly as the untiled image;
// 16 is that rounded up to the network's stride, which tile origins must respect.
inline constexpr int kTileMargin = 16;

// The tiles of one side of `length` pixels (a multiple of 4): `count` windows of `size` pixels
// starting at `origin[i]`, each writing the output pixels [keep_begin[i], keep_end[i]) — a
// partition of [0, length), each kept pixel at least kTileMargin from its window's cut edges.
struct AxisTiles {
  int size = 0;
  std::vector<int> origin, keep_begin, keep_end;
};
// One window when length <= max_tile (or max_tile is 0); else the fewest windows of at most
// max_tile (a multiple of 4, > 2 * kTileMargin), all of one size, spread evenly.
AxisTiles tile_axis(int length, int max_tile);

struct DenoiserOptions {
  // Images whose padded sides are both <= tile are run whole; larger ones in overlapping tiles
  // of at most tile x tile (0: always whole). Tiles bound the memory (the fused forward holds
  // ≈ 48 bytes per pixel of the window each thread works on) and let the threads share one
  // large image.
  int tile = 512;
  bool fused = true;  // CPU: dae's fused kernels (model/fused_conv_dae.hpp), else LibTorch's
  int batch = 256;    // images, or tiles, per forward pass
};

// The network's output for images of any size. Not thread-safe: one per thread of the caller.
class ImageDenoiser {
 public:
  // `model` stays owned by the caller; its parameters' device is the one images are run on.
  ImageDenoiser(ConvDaeImpl& model, DenoiserOptions options);

  // images: float [N, H, W] on the CPU (H, W >= kMinImageSide); returns the network's output
  // [N, H, W] on the CPU, float, not clipped.
  torch::Tensor denoise(const torch::Tensor& images);

 private:
  // [n, h, w] (contiguous) with h and w multiples of 4 -> the network's output [n, h, w],
  // `batch` at a time.
  torch::Tensor forward(const torch::Tensor& padded);
  // The fused kernels' output of `batch` into `output` (its rows of forward's result).
  void forward_fused(const ConvForwardWeights& weights, const torch::Tensor& batch,
                     torch::Tensor& output);

  ConvDaeImpl& model_;
  DenoiserOptions options_;
  torch::Device device_;
};

}  // namespace dae
