// defines: dae::GrayImage, dae::write_png, dae::read_png, dae::tile (image grids for the report)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dae {

// An 8-bit grayscale image, row-major.
struct GrayImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

// Writes through libpng to `path.tmp` then renames; throws dae::Error naming the path.
void write_png(const std::string& path, const GrayImage& image);
// Decodes a PNG (any colour type) to grayscale; throws dae::Error if it does not decode.
GrayImage read_png(const std::string& path);

// Lays images [rows, cols, h, w] (float, clipped to [0, 1] for display) out as one picture:
// each cell scaled up `scale` times, `gap` pixels of mid-gray between cells.
GrayImage tile(const torch::Tensor& cells, int scale, int gap);

}  // namespace dae
