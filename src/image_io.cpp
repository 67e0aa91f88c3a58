#include "dae/image_io.hpp"

#include <png.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "dae/error.hpp"

namespace dae {

namespace {

using FilePtr = std::unique_ptr<FILE, int (*)(FILE*)>;

// libpng reports errors through longjmp by default; throwing from its error callback unwinds
// through C frames, so errors are recorded and libpng's own longjmp is used instead.
struct PngError {
  std::string message;
};

void on_png_error(png_structp png, png_const_charp message) {
  static_cast<PngError*>(png_get_error_ptr(png))->message = message;
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

}  // namespace

void write_png(const std::string& path, const GrayImage& image) {
  const std::string temporary = path + ".tmp";
  volatile bool written = false;
  PngError error;
  {
    FilePtr file(std::fopen(temporary.c_str(), "wb"), &std::fclose);
    if (!file) throw Error(path + ": cannot create");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error,
                                              on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (png != nullptr && info != nullptr && setjmp(png_jmpbuf(png)) == 0) {
      png_init_io(png, file.get());
      png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
                   static_cast<png_uint_32>(image.height), 8, PNG_COLOR_TYPE_GRAY,
                   PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
      png_write_info(png, info);
      for (int y = 0; y < image.height; ++y)
        png_write_row(png, image.pixels.data() + static_cast<std::size_t>(y) * image.width);
      png_write_end(png, info);
      written = true;
    }
    png_destroy_write_struct(&png, &info);
    written = written && std::fflush(file.get()) == 0;
  }
  std::error_code ignored;
  if (!written) {
    std::filesystem::remove(temporary, ignored);
    throw Error(path + ": PNG write failed" + (error.message.empty() ? "" : ": " + error.message));
  }
  std::filesystem::rename(temporary, path);
}

GrayImage read_png(const std::string& path) {
  FilePtr file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(path + ": cannot open");
  PngError error;
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  GrayImage image;
  volatile bool decoded = false;
  if (png != nullptr && info != nullptr && setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, file.get());
    png_read_info(png, info);
    // Whatever the file holds, hand us 8-bit gray without alpha.
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_expand(png);
    png_set_rgb_to_gray_fixed(png, 1, -1, -1);
    png_read_update_info(png, info);
    image.width = static_cast<int>(png_get_image_width(png, info));
    image.height = static_cast<int>(png_get_image_height(png, info));
    image.pixels.resize(static_cast<std::size_t>(image.width) * image.height);
    for (int y = 0; y < image.height; ++y)
      png_read_row(png, image.pixels.data() + static_cast<std::size_t>(y) * image.width, nullptr);
    decoded = true;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  if (!decoded)
    throw Error(path + ": not a decodable PNG" + (error.message.empty() ? "" : ": " + error.message));
  return image;
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
