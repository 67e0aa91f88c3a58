#include "dae/io/image_io.hpp"

#include <cmath>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"

namespace dae {

void write_png(const std::string& path, const GrayImage& image) {
  std::vector<std::uint8_t> png;
  try {
    png = encode_png(image.width, image.height, 1, image.pixels.data());
  } catch (const Error& error) {
    throw Error(path + ": " + error.what());
  }
  write_file_durably(path, png);
}

GrayImage read_png(const std::string& path) {
  if (image_format_of(path) != ImageFormat::kPng) throw Error(path + ": not a PNG");
  const Image image = read_image(path, ColourPolicy::kLuminance);
  GrayImage gray;
  gray.width = image.width;
  gray.height = image.height;
  gray.pixels.reserve(image.pixels.size());
  for (const float value : image.pixels)
    gray.pixels.push_back(static_cast<std::uint8_t>(std::lround(value * 255.0f)));
  return gray;
}

GrayImage tile(const torch::Tensor& cells, int scale, int gap) {
  const torch::Tensor pixels =
      (cells.detach().to(torch::kCPU, torch::kFloat32).clamp(0, 1) * 255).round().to(torch::kUInt8);
  const auto rows = static_cast<int>(pixels.size(0)), cols = static_cast<int>(pixels.size(1));
  const auto h = static_cast<int>(pixels.size(2)), w = static_cast<int>(pixels.size(3));
  GrayImage image;
  image.width = cols * w * scale + (cols + 1) * gap;
  image.height = rows * h * scale + (rows + 1) * gap;
  image.pixels.assign(static_cast<std::size_t>(image.width) * image.height, 128);
  const auto data = pixels.accessor<std::uint8_t, 4>();
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      for (int y = 0; y < h * scale; ++y)
        for (int x = 0; x < w * scale; ++x) {
          const int out_y = gap + r * (h * scale + gap) + y;
          const int out_x = gap + c * (w * scale + gap) + x;
          image.pixels[static_cast<std::size_t>(out_y) * image.width + out_x] =
              data[r][c][y / scale][x / scale];
        }
  return image;
}

}  // namespace dae
