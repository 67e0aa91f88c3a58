#include "dae/io/image_io.hpp"

#include <png.h>

#include <cstdio>
#include <memory>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"

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

void append_png_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* bytes = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
  bytes->insert(bytes->end(), data, data + length);
}

}  // namespace

std::vector<std::uint8_t> encode_png(int width, int height, int channels,
                                     const std::uint8_t* pixels) {
  DAE_CHECK(channels == 1 || channels == 3, "encode_png: channels must be 1 or 3");
  std::vector<std::uint8_t> bytes;
  volatile bool encoded = false;
  PngError error;
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (png != nullptr && info != nullptr && setjmp(png_jmpbuf(png)) == 0) {
    // Into memory: the file itself is written by write_file_durably, with every write checked.
    png_set_write_fn(png, &bytes, append_png_bytes, nullptr);
    png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    const std::size_t row_bytes = static_cast<std::size_t>(width) * channels;
    for (int y = 0; y < height; ++y)
      png_write_row(png, pixels + static_cast<std::size_t>(y) * row_bytes);
    png_write_end(png, info);
    encoded = true;
  }
  png_destroy_write_struct(&png, &info);
  if (!encoded)
    throw Error("PNG encoding failed" + (error.message.empty() ? "" : ": " + error.message));
  return bytes;
}

void write_png(const std::string& path, const GrayImage& image) {
  write_file_durably(path, encode_png(image.width, image.height, 1, image.pixels.data()));
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
