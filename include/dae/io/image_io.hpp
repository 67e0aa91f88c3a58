// defines: dae::GrayImage, dae::encode_png, dae::write_png, dae::read_png, dae::tile (image grids for the report)
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

// PNG bytes of `pixels` (8-bit, row-major; `channels` 1: gray, 3: RGB), encoded in memory.
std::vector<std::uint8_t> encode_png(int width, int height, int channels,
                                     const std::uint8_t* pixels);
// Encodes `image` and writes it with write_file_durably; throws dae::Error naming the path.
void write_png(const std::string& path, const GrayImage& image);
// Decodes a PNG (any colour type) to grayscale; throws dae::Error if it does not decode.
GrayImage read_png(const std::string& path);

// Lays images [rows, cols, h, w] (float, clipped to [0, 1] for display) out as one picture:
// each cell scaled up `scale` times, `gap` pixels of mid-gray between cells.
GrayImage tile(const torch::Tensor& cells, int scale, int gap);

}  // namespace dae
