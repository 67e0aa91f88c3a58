#include "dae/io/image_file.hpp"

#include <png.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <utility>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"

namespace dae {

namespace {

// libpng keeps ancillary chunks (text, ICC profile) in memory: bounded, so that a compressed
// text chunk that would inflate to gigabytes is dropped instead of allocated.
constexpr png_alloc_size_t kMaxPngChunkBytes = 8 << 20;

struct CloseFile {
  void operator()(FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<FILE, CloseFile>;

// Opens `path` for reading once it is known to be a regular file: opening a FIFO would block
// until some writer came, and a directory reads as nothing.
FilePtr open_regular_file(const std::string& path) {
  require_regular_file(path, std::numeric_limits<std::uint64_t>::max(), "");
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  return file;
}

[[noreturn]] void refuse(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

// Whether a header's sizes give at least one pixel and at most kMaxImagePixels. Each side is
// compared first, so the product cannot overflow.
bool pixel_count_fits(std::int64_t width, std::int64_t height) {
  return width > 0 && height > 0 && width <= kMaxImagePixels && height <= kMaxImagePixels &&
         width * height <= kMaxImagePixels;
}

[[noreturn]] void refuse_pixel_count(const std::string& path, const char* format,
                                     std::int64_t width, std::int64_t height) {
  const std::string size = std::to_string(width) + " x " + std::to_string(height);
  if (width <= 0 || height <= 0)
    refuse(path, std::string("a ") + format + " of " + size + " pixels: it has no pixels");
  refuse(path, std::string("a ") + format + " of " + size + " pixels, more than the " +
                   std::to_string(kMaxImagePixels) + " (16384 x 16384) an image may have");
}

// Reads the first bytes and rewinds: the format is told by content, never by the file's name.
ImageFormat sniff_format(FILE* file, const std::string& path) {
  png_byte magic[8] = {};
  const std::size_t got = std::fread(magic, 1, sizeof magic, file);
  if (got == 0 && std::ferror(file) != 0) refuse(path, "read failed");
  if (std::fseek(file, 0, SEEK_SET) != 0) refuse(path, "cannot seek back to its start");
  if (got == 0) refuse(path, "an empty file, not a PNG or PGM image");
  if (png_sig_cmp(magic, 0, got) == 0) return ImageFormat::kPng;
  if (got >= 2 && magic[0] == 'P' && (magic[1] == '5' || magic[1] == '2')) return ImageFormat::kPgm;
  refuse(path, "neither a PNG nor a PGM image (unrecognised first bytes)");
}

// ---- PNG -------------------------------------------------------------------------------------

// libpng reports an error by calling on_png_error, which must not return. Throwing from it would
// unwind through libpng's C frames, so the message is kept here, libpng's longjmp returns to the
// one function that makes the libpng calls, and the exception is thrown after it has returned.
// A fixed buffer: copying the message allocates nothing inside libpng.
struct PngMessage {
  char text[256] = {};
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* kept = static_cast<PngMessage*>(png_get_error_ptr(png));
  std::snprintf(kept->text, sizeof kept->text, "%s", message);
  png_longjmp(png, 1);
}

// Warnings (a bad CRC in an ancillary chunk, extra data after the image) change nothing that is
// decoded; they are dropped rather than printed on stderr outside the log.
void drop_png_warning(png_structp, png_const_charp) {}

// The read callback: names a file that ends early, which libpng's own reader calls "Read Error".
void read_png_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* file = static_cast<FILE*>(png_get_io_ptr(png));
  if (std::fread(data, 1, length, file) != length)
    png_error(png, std::ferror(file) != 0 ? "read failed" : "the file ends early (truncated)");
}

void append_png_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* bytes = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
  bool out_of_memory = false;
  try {
    bytes->insert(bytes->end(), data, data + length);
  } catch (const std::bad_alloc&) {
    out_of_memory = true;  // png_error leaves by longjmp: not from inside the handler
  }
  if (out_of_memory) png_error(png, "out of memory");
}

// Owns a png_struct and its png_info for reading; freed on every way out.
class PngReadHandle {
 public:
  explicit PngReadHandle(PngMessage* message)
      : png_(
            png_create_read_struct(PNG_LIBPNG_VER_STRING, message, on_png_error, drop_png_warning)),
        info_(png_ != nullptr ? png_create_info_struct(png_) : nullptr) {}
  ~PngReadHandle() { png_destroy_read_struct(&png_, &info_, nullptr); }
  PngReadHandle(const PngReadHandle&) = delete;
  PngReadHandle& operator=(const PngReadHandle&) = delete;
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_;
  png_infop info_;
};

// Owns a png_struct and its png_info for writing.
class PngWriteHandle {
 public:
  explicit PngWriteHandle(PngMessage* message)
      : png_(png_create_write_struct(PNG_LIBPNG_VER_STRING, message, on_png_error,
                                     drop_png_warning)),
        info_(png_ != nullptr ? png_create_info_struct(png_) : nullptr) {}
  ~PngWriteHandle() { png_destroy_write_struct(&png_, &info_); }
  PngWriteHandle(const PngWriteHandle&) = delete;
  PngWriteHandle& operator=(const PngWriteHandle&) = delete;
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_;
  png_infop info_;
};

enum class PngOutcome { kDecoded, kFailed, kColour };

// What decode_png fills in; it lives in the caller's frame, which a longjmp never leaves.
struct PngDecoded {
  png_uint_32 width = 0, height = 0;
  int colour_type = 0;              // as in IHDR
  int channels = 0, bit_depth = 0;  // of the rows as delivered: 1-4 channels of 8 or 16 bits
  std::vector<png_byte> samples;    // one row, or every row of an interlaced image
  std::vector<float> pixels;        // the Image's
};

// One row of samples to gray in [0, 1]: gray or gray + alpha, the gray (alpha is ignored);
// RGB or RGBA, Rec. 601 luma.
void row_to_gray(const png_byte* row, int width, int channels, int bit_depth, float* pixels) {
  const int bytes = bit_depth == 16 ? 2 : 1;
  const float max = bit_depth == 16 ? 65535.0f : 255.0f;
  for (int x = 0; x < width; ++x, row += channels * bytes) {
    const auto sample = [&](int c) {
      return static_cast<float>(bytes == 2 ? (row[2 * c] << 8) | row[2 * c + 1] : row[c]);
    };
    pixels[x] = channels < 3 ? sample(0) / max
                             : (0.299f * sample(0) + 0.587f * sample(1) + 0.114f * sample(2)) / max;
  }
}

// Every libpng call of a read, in one function with no object that has a destructor: a libpng
// error longjmps back to the setjmp here, past nothing that would need unwinding.
PngOutcome decode_png(png_structp png, png_infop info, FILE* file, ColourPolicy colour,
                      PngDecoded* out) {
  if (setjmp(png_jmpbuf(png)) != 0) return PngOutcome::kFailed;
  png_set_read_fn(png, file, read_png_bytes);
  // Behind check_png_size: libpng's own per-side limit.
  png_set_user_limits(png, static_cast<png_uint_32>(kMaxImagePixels),
                      static_cast<png_uint_32>(kMaxImagePixels));
  png_set_chunk_malloc_max(png, kMaxPngChunkBytes);
  png_read_info(png, info);  // the chunks before the first IDAT
  out->width = png_get_image_width(png, info);
  out->height = png_get_image_height(png, info);
  out->colour_type = png_get_color_type(png, info);
  if ((out->colour_type & PNG_COLOR_MASK_COLOR) != 0 && colour == ColourPolicy::kRefuse)
    return PngOutcome::kColour;
  if (out->colour_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (out->colour_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->channels = png_get_channels(png, info);
  out->bit_depth = png_get_bit_depth(png, info);
  const png_size_t row_bytes = png_get_rowbytes(png, info);
  // An interlaced image arrives in seven passes over all its rows; any other a row at a time,
  // so that only one row of samples is held beside the pixels.
  const png_uint_32 held_rows = passes > 1 ? out->height : 1;
  out->samples.resize(row_bytes * held_rows);
  out->pixels.resize(static_cast<std::size_t>(out->width) * out->height);
  const int width = static_cast<int>(out->width);
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < out->height; ++y) {
      png_byte* row = &out->samples[passes > 1 ? y * row_bytes : 0];
      png_read_row(png, row, nullptr);
      if (pass == passes - 1)
        row_to_gray(row, width, out->channels, out->bit_depth, &out->pixels[y * out->width]);
    }
  png_read_end(png, nullptr);  // the last IDAT's CRC and the chunks after it: a cut file fails
  return PngOutcome::kDecoded;
}

const char* colour_name(int colour_type) {
  switch (colour_type) {
    case PNG_COLOR_TYPE_PALETTE:
      return "palette";
    case PNG_COLOR_TYPE_RGB:
      return "RGB";
    default:
      return "RGBA";
  }
}

// Refuses a PNG whose IHDR (the first chunk, bytes 8-23 of the file) gives no pixels or more
// than kMaxImagePixels, before libpng reads it: with our message rather than libpng's (which
// calls either case "Invalid IHDR data"), and before anything of its size is allocated.
void check_png_size(FILE* file, const std::string& path) {
  png_byte head[24];
  const std::size_t got = std::fread(head, 1, sizeof head, file);
  if (std::fseek(file, 0, SEEK_SET) != 0) refuse(path, "cannot seek back to its start");
  if (got < sizeof head || std::memcmp(head + 12, "IHDR", 4) != 0) return;  // libpng refuses it
  const std::int64_t width = png_get_uint_32(head + 16), height = png_get_uint_32(head + 20);
  if (!pixel_count_fits(width, height)) refuse_pixel_count(path, "PNG", width, height);
}

Image read_png_file(FILE* file, const std::string& path, ColourPolicy colour) {
  check_png_size(file, path);
  PngMessage message;
  PngReadHandle handle(&message);
  if (handle.info() == nullptr) refuse(path, "cannot decode the PNG: out of memory");
  PngDecoded decoded;
  const PngOutcome outcome = decode_png(handle.png(), handle.info(), file, colour, &decoded);
  if (outcome == PngOutcome::kFailed)
    refuse(path, std::string("cannot decode the PNG: ") + message.text);
  if (outcome == PngOutcome::kColour)
    refuse(path, std::string("a colour PNG (") + colour_name(decoded.colour_type) +
                     "); pass --colour luminance to convert it");
  Image image;
  image.width = static_cast<int>(decoded.width);
  image.height = static_cast<int>(decoded.height);
  image.bit_depth = decoded.bit_depth;
  image.pixels = std::move(decoded.pixels);
  return image;
}

// Every libpng call of an encode; like decode_png, nothing here has a destructor.
bool encode_png_rows(png_structp png, png_infop info, int width, int height, int channels,
                     const std::uint8_t* samples, int bit_depth, std::vector<std::uint8_t>* out) {
  if (setjmp(png_jmpbuf(png)) != 0) return false;
  // Into memory: the file itself is written by write_file_durably, with every write checked.
  png_set_write_fn(png, out, append_png_bytes, nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height),
               bit_depth, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const std::size_t row_bytes = static_cast<std::size_t>(width) * channels * (bit_depth / 8);
  for (int y = 0; y < height; ++y) png_write_row(png, samples + y * row_bytes);
  png_write_end(png, info);
  return true;
}

// ---- PGM -------------------------------------------------------------------------------------

// Netpbm's gray map: "P5" (binary: one byte per sample, two most significant first when maxval
// is above 255) or "P2" (ASCII decimal), then width, height and maxval as decimal numbers with
// whitespace and '#' comments between them, one whitespace byte, and the raster.
class PgmReader {
 public:
  PgmReader(FILE* file, const std::string& path) : file_(file), path_(path) {}

  Image read() {
    std::getc(file_);  // 'P', checked by sniff_format
    const bool binary = std::getc(file_) == '5';
    const std::int64_t width = header_number("width");
    const std::int64_t height = header_number("height");
    if (!pixel_count_fits(width, height)) refuse_pixel_count(path_, "PGM", width, height);
    const std::int64_t maxval = header_number("maxval");
    if (maxval < 1 || maxval > 65535)
      refuse(path_, "PGM maxval " + std::to_string(maxval) + " is outside 1..65535");
    // Exactly one whitespace byte ends the header: in P5 the next byte is the first sample's.
    const int end = std::getc(file_);
    if (end == EOF) truncated(0, width * height);
    if (!is_space(end)) refuse(path_, "a malformed PGM header: no whitespace after maxval");

    Image image;
    image.width = static_cast<int>(width);
    image.height = static_cast<int>(height);
    image.bit_depth = maxval > 255 ? 16 : 8;
    image.pixels.resize(static_cast<std::size_t>(width) * height);
    maxval_ = static_cast<int>(maxval);
    if (binary)
      read_binary(&image);
    else
      read_ascii(&image);
    return image;
  }

 private:
  // Netpbm's whitespace, whatever the locale.
  static bool is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  }
  static bool is_digit(int c) { return c >= '0' && c <= '9'; }

  // Skips whitespace and '#' comments (to the end of their line); returns the next other byte.
  int skip_space_and_comments() {
    for (;;) {
      int c = std::getc(file_);
      if (c == '#')
        while (c != '\n' && c != '\r' && c != EOF) c = std::getc(file_);
      if (!is_space(c)) return c;
    }
  }

  // A decimal number; the byte after it is left unread. Stops growing past 2^31 so that no
  // number of digits can overflow it.
  std::int64_t decimal(int first) {
    std::int64_t value = first - '0';
    int c = std::getc(file_);
    for (; is_digit(c); c = std::getc(file_))
      value = std::min<std::int64_t>(value * 10 + (c - '0'), std::int64_t{1} << 31);
    if (c != EOF) std::ungetc(c, file_);
    return value;
  }

  std::int64_t header_number(const char* what) {
    const int c = skip_space_and_comments();
    if (c == EOF) {
      check_read();
      refuse(path_, std::string("the PGM header ends before its ") + what + " (truncated)");
    }
    if (!is_digit(c))
      refuse(path_, std::string("a malformed PGM header: its ") + what + " is not a number");
    return decimal(c);
  }

  void check_read() const {
    if (std::ferror(file_) != 0) refuse(path_, "read failed");
  }

  [[noreturn]] void truncated(std::int64_t samples, std::int64_t expected) const {
    check_read();
    refuse(path_, "the PGM ends after " + std::to_string(samples) + " of its " +
                      std::to_string(expected) + " samples (truncated)");
  }

  void check_sample(std::int64_t value, std::size_t index, std::size_t width) const {
    if (value > maxval_)
      refuse(path_, "PGM sample " + std::to_string(value) + " at row " +
                        std::to_string(index / width) + ", column " +
                        std::to_string(index % width) + " is above its maxval " +
                        std::to_string(maxval_));
  }

  void read_binary(Image* image) {
    const std::size_t bytes = maxval_ > 255 ? 2 : 1;
    const std::size_t width = static_cast<std::size_t>(image->width);
    std::vector<std::uint8_t> row(width * bytes);  // a row at a time: no second full-size copy
    for (std::size_t y = 0; y < static_cast<std::size_t>(image->height); ++y) {
      const std::size_t got = std::fread(row.data(), 1, row.size(), file_);
      if (got != row.size())
        truncated(static_cast<std::int64_t>(y * width + got / bytes),
                  static_cast<std::int64_t>(image->pixels.size()));
      for (std::size_t x = 0; x < width; ++x) {
        const int value = bytes == 2 ? (row[2 * x] << 8) | row[2 * x + 1] : row[x];
        check_sample(value, y * width + x, width);
        image->pixels[y * width + x] = static_cast<float>(value) / static_cast<float>(maxval_);
      }
    }
  }

  void read_ascii(Image* image) {
    for (std::size_t i = 0; i < image->pixels.size(); ++i) {
      const int c = skip_space_and_comments();
      if (c == EOF)
        truncated(static_cast<std::int64_t>(i), static_cast<std::int64_t>(image->pixels.size()));
      if (!is_digit(c))
        refuse(path_, "PGM sample " + std::to_string(i) + " is not a decimal number");
      const std::int64_t value = decimal(c);
      check_sample(value, i, static_cast<std::size_t>(image->width));
      image->pixels[i] = static_cast<float>(value) / static_cast<float>(maxval_);
    }
  }

  FILE* file_;
  const std::string path_;
  int maxval_ = 0;
};

// Big-endian samples of `image`, clamped and rounded (NaN to 0), for either format.
std::vector<std::uint8_t> quantise(const Image& image) {
  const int bytes = image.bit_depth == 16 ? 2 : 1;
  const float max = image.bit_depth == 16 ? 65535.0f : 255.0f;
  std::vector<std::uint8_t> samples(image.pixels.size() * bytes);
  for (std::size_t i = 0; i < image.pixels.size(); ++i) {
    const float v = image.pixels[i];
    // !(v > 0) is true for NaN as well as for v <= 0.
    const float clamped = !(v > 0.0f) ? 0.0f : std::min(v, 1.0f);
    const auto sample = static_cast<unsigned>(std::lround(clamped * max));
    if (bytes == 2) {
      samples[2 * i] = static_cast<std::uint8_t>(sample >> 8);
      samples[2 * i + 1] = static_cast<std::uint8_t>(sample & 0xff);
    } else {
      samples[i] = static_cast<std::uint8_t>(sample);
    }
  }
  return samples;
}

}  // namespace

std::vector<std::uint8_t> encode_png(int width, int height, int channels,
                                     const std::uint8_t* samples, int bit_depth) {
  DAE_CHECK(channels == 1 || channels == 3, "encode_png: channels must be 1 or 3");
  DAE_CHECK(bit_depth == 8 || bit_depth == 16, "encode_png: bit depth must be 8 or 16");
  DAE_CHECK(width > 0 && height > 0, "encode_png: an image needs at least one pixel");
  PngMessage message;
  PngWriteHandle handle(&message);
  std::vector<std::uint8_t> bytes;
  if (handle.info() == nullptr || !encode_png_rows(handle.png(), handle.info(), width, height,
                                                   channels, samples, bit_depth, &bytes))
    throw Error(std::string("PNG encoding failed: ") +
                (handle.info() == nullptr ? "out of memory" : message.text));
  return bytes;
}

ImageFormat image_format_of(const std::string& path) {
  const FilePtr file = open_regular_file(path);
  return sniff_format(file.get(), path);
}

Image read_image(const std::string& path, ColourPolicy colour) {
  const FilePtr file = open_regular_file(path);
  if (sniff_format(file.get(), path) == ImageFormat::kPng)
    return read_png_file(file.get(), path, colour);
  return PgmReader(file.get(), path).read();
}

void write_image(const std::string& path, const Image& image, ImageFormat format) {
  if (!pixel_count_fits(image.width, image.height))
    refuse_pixel_count(path, "image", image.width, image.height);
  if (image.pixels.size() != static_cast<std::size_t>(image.width) * image.height)
    refuse(path, std::to_string(image.pixels.size()) + " pixels for an image of " +
                     std::to_string(image.width) + " x " + std::to_string(image.height));
  if (image.bit_depth != 8 && image.bit_depth != 16)
    refuse(path, "bit depth " + std::to_string(image.bit_depth) + " (8 or 16 can be written)");
  const std::vector<std::uint8_t> samples = quantise(image);
  if (format == ImageFormat::kPng) {
    std::vector<std::uint8_t> png;
    try {
      png = encode_png(image.width, image.height, 1, samples.data(), image.bit_depth);
    } catch (const Error& error) {
      refuse(path, error.what());
    }
    write_file_durably(path, png);
    return;
  }
  const std::string header = "P5\n" + std::to_string(image.width) + " " +
                             std::to_string(image.height) + "\n" +
                             (image.bit_depth == 16 ? "65535" : "255") + "\n";
  std::vector<std::uint8_t> pgm(header.begin(), header.end());
  pgm.insert(pgm.end(), samples.begin(), samples.end());
  write_file_durably(path, pgm);
}

std::vector<std::string> list_image_files(const std::string& directory) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  std::vector<std::string> pending{""};  // directories still to list, relative to `directory`
  while (!pending.empty()) {
    const std::string relative = pending.back();
    pending.pop_back();
    const fs::path here = relative.empty() ? fs::path(directory) : fs::path(directory) / relative;
    std::error_code error;
    for (fs::directory_iterator it(here, error), end; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      const std::string entry = relative.empty() ? name : relative + "/" + name;
      std::error_code ignored;  // an entry whose type cannot be read is listed: reading it fails
      const fs::file_type type = it->symlink_status(ignored).type();
      if (type == fs::file_type::directory)
        pending.push_back(entry);
      else if (has_image_extension(name) &&
               !(type == fs::file_type::symlink && fs::is_directory(it->path(), ignored)))
        found.push_back(entry);
    }
    if (error) throw Error(here.string() + ": cannot list the directory (" + error.message() + ")");
  }
  // std::string compares as unsigned bytes (memcmp): no locale, no file system order.
  std::sort(found.begin(), found.end());
  return found;
}

bool has_image_extension(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return extension == ".png" || extension == ".pgm";
}

}  // namespace dae
