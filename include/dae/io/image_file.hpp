// defines: dae::Image, dae::ImageFormat, dae::ColourPolicy, dae::kMaxImagePixels,
//          dae::read_image, dae::write_image, dae::encode_png, dae::image_format_of,
//          dae::list_image_files, dae::has_image_extension (users' PNG and PGM image files)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dae {

// A grayscale image read from a file.
struct Image {
  int width = 0, height = 0;
  int bit_depth = 8;          // 8 or 16: the precision it was stored with, and is written back with
  std::vector<float> pixels;  // [height * width] row-major, in [0, 1]: sample / (2^bit_depth - 1)
                              // (PGM: sample / maxval)
};

enum class ImageFormat { kPng, kPgm };

// What a colour image (PNG palette, RGB or RGBA) gets: refused with a one-line error, or turned
// into gray with Rec. 601 luma (0.299 R + 0.587 G + 0.114 B, in float on the decoded samples).
enum class ColourPolicy { kRefuse, kLuminance };

// The most pixels an image may have, read or written: 16384 x 16384 (1 GiB of float pixels).
// Checked against the header's width x height before anything of the image's size is allocated:
// a header declaring more costs nothing, and a read holds at most the float pixels and one row
// of samples (an interlaced PNG, all of its samples: up to 8 bytes a pixel).
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 28;

// The format of the file at `path`, by its first bytes (PNG signature, or "P5" / "P2"), whatever
// its name. Throws dae::Error naming the file when it is neither, or is not a regular file.
ImageFormat image_format_of(const std::string& path);

// Decodes the PNG or PGM (P5 binary or P2 ASCII, any maxval 1..65535) at `path`, told apart by
// content. PNG: gray of 1, 2 or 4 bits is expanded to 8 bits; alpha (gray + alpha, RGBA, tRNS)
// is ignored: the image is its gray, whatever it would be composited over; interlaced files
// decode. Every refusal (not a regular file, neither format, a colour image under kRefuse,
// no pixels or more than kMaxImagePixels, truncated, damaged, a PGM sample above maxval) is one
// dae::Error line naming `path`; libpng's warnings are dropped, never printed.
Image read_image(const std::string& path, ColourPolicy colour);

// Writes `image` as a PNG (gray, bit_depth 8 or 16) or a P5 PGM (maxval 255 or 65535): each
// pixel clamped to [0, 1], NaN written as 0, then rounded to the nearest sample. Encoded in
// memory and written with write_file_durably, so `path` holds the old file or the whole new one.
// Throws dae::Error naming `path` for an image with no pixels, more than kMaxImagePixels, a
// pixel count other than width x height, or a bit depth other than 8 or 16.
void write_image(const std::string& path, const Image& image, ImageFormat format);

// PNG bytes of `samples` (row-major, `channels` 1: gray or 3: RGB interleaved; `bit_depth` 8, or
// 16 as two bytes per sample, most significant first as in the PNG file), encoded in memory.
std::vector<std::uint8_t> encode_png(int width, int height, int channels,
                                     const std::uint8_t* samples, int bit_depth = 8);

// Every entry under `directory` (recursively) that has_image_extension and is not a directory,
// as paths relative to `directory` with '/' separators ("a/b.png"; the file is
// directory + "/" + that), sorted byte-wise: the same order on every machine and file system.
// Symbolic links to files are listed; symbolic links to directories are not followed (so a
// link loop cannot hang it, and nothing is listed twice). A FIFO or a dangling link with an
// image name is listed, so that reading it fails loudly instead of the file being skipped
// silently. Throws dae::Error naming the directory that cannot be listed.
std::vector<std::string> list_image_files(const std::string& directory);

// Whether the file name ends in .png or .pgm, in any case.
bool has_image_extension(const std::string& path);

}  // namespace dae
