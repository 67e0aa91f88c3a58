// defines: dae::GrayImage, dae::write_png, dae::read_png, dae::tile (the report's image grids;
//          encode_png and the users' image files are image_file.hpp's)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dae/io/image_file.hpp"

namespace dae {

// An 8-bit grayscale image, row-major.
struct GrayImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

// Encodes `image` and writes it with write_file_durably; throws dae::Error naming the path.
void write_png(const std::string& path, const GrayImage& image);
// Decodes a PNG (colour by luminance) to 8-bit gray with read_image, which it shares every check
// with; throws dae::Error naming the path if it is not a decodable PNG.
GrayImage read_png(const std::string& path);

// Lays images [rows, cols, h, w] (float, clipped to [0, 1] for display) out as one picture:
// each cell scaled up `scale` times, `gap` pixels of mid-gray between cells.
GrayImage tile(const torch::Tensor& cells, int scale, int gap);

}  // namespace dae
