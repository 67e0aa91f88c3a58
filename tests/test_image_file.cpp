// The users' image files (dae/io/image_file.hpp): PNG and PGM round trips, what libpng's other
// layouts decode to, and one clear line for every hostile file. Every fixture is written here.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "dae/core/error.hpp"
#include "dae/io/image_file.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_bytes;
using Bytes = std::vector<std::uint8_t>;

// A PNG for libpng to write: samples row-major, channels interleaved, each below 2^bit_depth
// (palette: an index into `palette`).
struct PngFixture {
  int width = 1, height = 1, bit_depth = 8, colour_type = PNG_COLOR_TYPE_GRAY;
  bool interlaced = false;
  std::vector<png_color> palette;
  std::vector<int> samples;
};

int channels_of(int colour_type) {
  switch (colour_type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return 2;
    case PNG_COLOR_TYPE_RGB:
      return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return 4;
    default:
      return 1;  // gray, palette
  }
}

void append_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}

// The libpng calls, apart from every object with a destructor (libpng's errors longjmp here).
bool encode_fixture(png_structp png, png_infop info, const PngFixture& f, png_bytepp rows,
                    Bytes* out) {
  if (setjmp(png_jmpbuf(png)) != 0) return false;
  png_set_write_fn(png, out, append_bytes, nullptr);
  png_set_IHDR(png, info, f.width, f.height, f.bit_depth, f.colour_type,
               f.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!f.palette.empty())
    png_set_PLTE(png, info, f.palette.data(), static_cast<int>(f.palette.size()));
  png_write_info(png, info);
  png_write_image(png, rows);  // all seven passes when interlaced
  png_write_end(png, info);
  return true;
}

Bytes png_bytes(const PngFixture& f) {
  const int per_row = f.width * channels_of(f.colour_type);
  std::vector<Bytes> rows(f.height, Bytes((per_row * f.bit_depth + 7) / 8));
  for (int y = 0; y < f.height; ++y)
    for (int i = 0; i < per_row; ++i) {
      const int value = f.samples.at(y * per_row + i);
      Bytes& row = rows[y];
      if (f.bit_depth == 16) {
        row[2 * i] = static_cast<std::uint8_t>(value >> 8);
        row[2 * i + 1] = static_cast<std::uint8_t>(value & 0xff);
      } else {  // 1, 2, 4 bits: packed from the most significant bit
        const int bit = i * f.bit_depth;
        row[bit / 8] |= static_cast<std::uint8_t>(value << (8 - f.bit_depth - bit % 8));
      }
    }
  std::vector<png_bytep> pointers;
  for (Bytes& row : rows) pointers.push_back(row.data());
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  Bytes out;
  const bool ok = encode_fixture(png, info, f, pointers.data(), &out);
  png_destroy_write_struct(&png, &info);
  EXPECT_TRUE(ok) << "the fixture did not encode";
  return out;
}

PngFixture gray(int width, int height, int bit_depth, std::vector<int> samples) {
  PngFixture f;
  f.width = width;
  f.height = height;
  f.bit_depth = bit_depth;
  f.samples = std::move(samples);
  return f;
}

void append_be32(Bytes* out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back((value >> shift) & 0xff);
}

// One PNG chunk: length, type, data, CRC of type and data.
void append_chunk(Bytes* out, const std::string& type, const Bytes& data) {
  append_be32(out, static_cast<std::uint32_t>(data.size()));
  Bytes typed(type.begin(), type.end());
  typed.insert(typed.end(), data.begin(), data.end());
  out->insert(out->end(), typed.begin(), typed.end());
  append_be32(out, static_cast<std::uint32_t>(crc32(0, typed.data(), typed.size())));
}

// A PNG whose IHDR declares width x height (8-bit gray) and whose one IDAT holds no pixels.
Bytes png_header_only(std::uint32_t width, std::uint32_t height) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  append_be32(&ihdr, width);
  append_be32(&ihdr, height);
  ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});
  append_chunk(&out, "IHDR", ihdr);
  append_chunk(&out, "IDAT", {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01});
  append_chunk(&out, "IEND", {});
  return out;
}

// Where the chunk `type` starts (its length field).
std::size_t chunk_offset(const Bytes& png, const std::string& type) {
  const std::string text(png.begin(), png.end());
  const std::size_t at = text.find(type);
  EXPECT_NE(at, std::string::npos) << type;
  return at - 4;
}

Bytes text_bytes(const std::string& text) { return Bytes(text.begin(), text.end()); }

std::string read_error(const std::string& path, ColourPolicy colour = ColourPolicy::kRefuse) {
  try {
    read_image(path, colour);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// Reading `bytes` is refused with one line that names the file and says `problem`.
void expect_refused(const TempDir& dir, const std::string& name, const Bytes& bytes,
                    const std::string& problem) {
  SCOPED_TRACE(name);
  const std::string path = dir.file(name);
  write_bytes(path, bytes);
  const std::string error = read_error(path);
  EXPECT_EQ(error.rfind(path + ": ", 0), 0u) << error;
  EXPECT_NE(error.find(problem), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

// 64 x 64 of noise: an IDAT of a few kB, to cut in the middle.
Bytes noisy_png() {
  std::vector<int> samples(64 * 64);
  std::uint32_t state = 12345;
  for (int& s : samples) s = static_cast<int>((state = state * 1103515245u + 12345u) >> 24);
  return png_bytes(gray(64, 64, 8, samples));
}

Image ramp(int width, int height, int bit_depth) {
  Image image;
  image.width = width;
  image.height = height;
  image.bit_depth = bit_depth;
  const int max = bit_depth == 16 ? 65535 : 255;
  for (int i = 0; i < width * height; ++i)  // 0, max and spread values between
    image.pixels.push_back(static_cast<float>(i * 7919 % (max + 1)) / static_cast<float>(max));
  image.pixels.back() = 1.0f;
  return image;
}

TEST(ImageFile, RoundTripsPngAndPgmAt8And16BitsExactly) {
  TempDir dir;
  for (const ImageFormat format : {ImageFormat::kPng, ImageFormat::kPgm})
    for (const int depth : {8, 16}) {
      const std::string path =
          dir.file("r" + std::to_string(depth) + (format == ImageFormat::kPng ? ".png" : ".pgm"));
      SCOPED_TRACE(path);
      const Image image = ramp(7, 5, depth);
      write_image(path, image, format);
      EXPECT_EQ(image_format_of(path), format);
      const Image back = read_image(path, ColourPolicy::kRefuse);
      EXPECT_EQ(back.width, 7);
      EXPECT_EQ(back.height, 5);
      EXPECT_EQ(back.bit_depth, depth);
      EXPECT_EQ(back.pixels, image.pixels);  // bit for bit
    }
  // The PGM is P5 with maxval 255 or 65535, 16-bit samples most significant byte first.
  Image two = ramp(2, 1, 16);
  two.pixels = {258.0f / 65535.0f, 1.0f};
  write_image(dir.file("two.pgm"), two, ImageFormat::kPgm);
  std::ifstream in(dir.file("two.pgm"), std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  EXPECT_EQ(bytes, std::string("P5\n2 1\n65535\n\x01\x02\xff\xff", 17));
}

TEST(ImageFile, ReadsBinaryAndAsciiPgmWithAnyMaxvalAndComments) {
  TempDir dir;
  write_bytes(dir.file("a.pgm"),
              text_bytes("P2\n# made by hand\n3 2 # width and height\n# maxval next\n10\n"
                         "0 5 10\n# a comment among the samples\n1  2\t3\n"));
  Image image = read_image(dir.file("a.pgm"), ColourPolicy::kRefuse);
  EXPECT_EQ(image.bit_depth, 8);
  ASSERT_EQ(image.pixels.size(), 6u);
  const std::vector<int> expected = {0, 5, 10, 1, 2, 3};
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(image.pixels[i], expected[i] / 10.0f) << i;

  Bytes p5 = text_bytes("P5 #c\n3 1\n1000\n");  // maxval > 255: two bytes a sample
  p5.insert(p5.end(), {0x00, 0x00, 0x01, 0xf4, 0x03, 0xe8});
  write_bytes(dir.file("b.pgm"), p5);
  image = read_image(dir.file("b.pgm"), ColourPolicy::kRefuse);
  EXPECT_EQ(image.bit_depth, 16);
  EXPECT_EQ(image.pixels, (std::vector<float>{0.0f, 0.5f, 1.0f}));
}

TEST(ImageFile, ExpandsLowBitDepthGrayPngTo8Bits) {
  TempDir dir;
  for (const int depth : {1, 2, 4}) {
    const int max = (1 << depth) - 1;
    std::vector<int> samples;
    for (int i = 0; i < 10; ++i) samples.push_back(i % (max + 1));
    write_bytes(dir.file("low.png"), png_bytes(gray(5, 2, depth, samples)));
    const Image image = read_image(dir.file("low.png"), ColourPolicy::kRefuse);
    EXPECT_EQ(image.bit_depth, 8) << depth;
    ASSERT_EQ(image.pixels.size(), 10u);
    for (int i = 0; i < 10; ++i)
      EXPECT_FLOAT_EQ(image.pixels[i], static_cast<float>(samples[i]) / max) << depth << " " << i;
  }
}

TEST(ImageFile, ReadsInterlacedPng) {
  TempDir dir;
  for (const int depth : {8, 16}) {
    std::vector<int> samples;
    for (int i = 0; i < 13 * 11; ++i) samples.push_back(i * 97 % (depth == 16 ? 65536 : 256));
    PngFixture f = gray(13, 11, depth, samples);
    f.interlaced = true;
    write_bytes(dir.file("adam7.png"), png_bytes(f));
    const Image image = read_image(dir.file("adam7.png"), ColourPolicy::kRefuse);
    ASSERT_EQ(image.pixels.size(), samples.size());
    const float max = depth == 16 ? 65535.0f : 255.0f;
    for (std::size_t i = 0; i < samples.size(); ++i)
      EXPECT_EQ(image.pixels[i], static_cast<float>(samples[i]) / max) << depth << " " << i;
  }
}

TEST(ImageFile, IgnoresTheAlphaOfGrayAlphaPng) {
  TempDir dir;
  PngFixture f = gray(2, 1, 8, {51, 0, 204, 255});  // (gray, alpha) pairs
  f.colour_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  write_bytes(dir.file("ga.png"), png_bytes(f));
  const Image image = read_image(dir.file("ga.png"), ColourPolicy::kRefuse);
  EXPECT_EQ(image.pixels, (std::vector<float>{51 / 255.0f, 204 / 255.0f}));
}

TEST(ImageFile, RefusesColourPngUnlessAskedForLuminance) {
  TempDir dir;
  const auto luma = [](float r, float g, float b, float max) {
    return (0.299f * r + 0.587f * g + 0.114f * b) / max;
  };
  PngFixture rgb = gray(2, 1, 8, {200, 100, 50, 0, 0, 255});
  rgb.colour_type = PNG_COLOR_TYPE_RGB;
  PngFixture rgba = gray(1, 1, 16, {60000, 30000, 1000, 7});
  rgba.colour_type = PNG_COLOR_TYPE_RGB_ALPHA;
  PngFixture palette = gray(2, 1, 8, {1, 0});
  palette.colour_type = PNG_COLOR_TYPE_PALETTE;
  palette.palette = {{10, 20, 30}, {200, 100, 50}};
  const struct {
    const char* name;
    const PngFixture* fixture;
    const char* kind;
    int bit_depth;
    std::vector<float> pixels;
  } cases[] = {
      {"rgb.png", &rgb, "(RGB)", 8, {luma(200, 100, 50, 255), luma(0, 0, 255, 255)}},
      {"rgba.png", &rgba, "(RGBA)", 16, {luma(60000, 30000, 1000, 65535)}},
      {"palette.png", &palette, "(palette)", 8, {luma(200, 100, 50, 255), luma(10, 20, 30, 255)}},
  };
  for (const auto& c : cases) {
    expect_refused(dir, c.name, png_bytes(*c.fixture),
                   std::string("a colour PNG ") + c.kind + "; pass --colour luminance");
    const Image image = read_image(dir.file(c.name), ColourPolicy::kLuminance);
    EXPECT_EQ(image.bit_depth, c.bit_depth) << c.name;
    ASSERT_EQ(image.pixels.size(), c.pixels.size()) << c.name;
    for (std::size_t i = 0; i < c.pixels.size(); ++i)
      EXPECT_FLOAT_EQ(image.pixels[i], c.pixels[i]) << c.name << " " << i;
  }
}

TEST(ImageFile, WritesClampedRoundedValuesAndNanAsZero) {
  TempDir dir;
  Image image;
  image.width = 5;
  image.height = 1;
  image.pixels = {-0.5f, 2.0f, std::numeric_limits<float>::quiet_NaN(), 0.5f, 0.3f};
  for (const ImageFormat format : {ImageFormat::kPng, ImageFormat::kPgm}) {
    const std::string path = dir.file(format == ImageFormat::kPng ? "c.png" : "c.pgm");
    write_image(path, image, format);
    const Image back = read_image(path, ColourPolicy::kRefuse);
    // 0.5 * 255 = 127.5 and 0.3f * 255 = 76.5 (in float): halves round up.
    EXPECT_EQ(back.pixels, (std::vector<float>{0.0f, 1.0f, 0.0f, 128 / 255.0f, 77 / 255.0f}));
  }
}

TEST(ImageFile, AFailedWriteLeavesNoFileAndKeepsTheOldOne) {
  TempDir dir;
  const Image image = ramp(4, 4, 8);
  const std::string missing = dir.file("missing/out.png");
  try {
    write_image(missing, image, ImageFormat::kPng);
    ADD_FAILURE() << "wrote into a missing directory";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "missing"));

  const std::string keep = dir.file("keep.pgm");
  write_image(keep, image, ImageFormat::kPgm);
  Image bad = image;
  bad.pixels.pop_back();  // not width x height
  EXPECT_THROW(write_image(keep, bad, ImageFormat::kPgm), Error);
  bad = image;
  bad.bit_depth = 12;
  EXPECT_THROW(write_image(keep, bad, ImageFormat::kPng), Error);
  bad.bit_depth = 8;
  bad.width = 0;
  EXPECT_THROW(write_image(keep, bad, ImageFormat::kPng), Error);
  EXPECT_EQ(read_image(keep, ColourPolicy::kRefuse).pixels, image.pixels);
  const auto entries = std::distance(fs::directory_iterator(dir.path()), {});
  EXPECT_EQ(entries, 1);  // keep.pgm alone: no temporary left beside it
}

TEST(ImageFile, RefusesHugeHeadersBeforeAllocating) {
  // 10^10 pixels would be 40 GB of floats: refused from the header alone, in no time.
  TempDir dir;
  const std::string too_many = "more than the 268435456 (16384 x 16384)";
  expect_refused(dir, "huge.png", png_header_only(100000, 100000), too_many);
  expect_refused(dir, "tall.png", png_header_only(1, 1u << 30), too_many);
  expect_refused(dir, "wide.png", png_header_only(0xffffffffu, 1), too_many);
  expect_refused(dir, "huge.pgm", text_bytes("P5\n100000 100000\n255\n\x01\x02"), too_many);
  expect_refused(dir, "wrap.pgm", text_bytes("P5 4294967296 4294967296 255\n"), too_many);
  expect_refused(dir, "digits.pgm", text_bytes("P2 99999999999999999999999999 1 255\n"), too_many);
}

TEST(ImageFile, RefusesImagesWithoutPixels) {
  TempDir dir;
  expect_refused(dir, "zero.png", png_header_only(0, 0), "a PNG of 0 x 0 pixels: it has no pixels");
  expect_refused(dir, "flat.png", png_header_only(5, 0), "5 x 0 pixels: it has no pixels");
  expect_refused(dir, "zero.pgm", text_bytes("P5\n0 0\n255\n"), "0 x 0 pixels: it has no pixels");
  expect_refused(dir, "flat.pgm", text_bytes("P2\n3 0\n255\n"), "3 x 0 pixels: it has no pixels");
}

TEST(ImageFile, RefusesTruncatedFiles) {
  TempDir dir;
  const Bytes png = noisy_png();
  const std::size_t idat = chunk_offset(png, "IDAT");
  expect_refused(dir, "cut_idat.png", Bytes(png.begin(), png.begin() + idat + 8 + 1000),
                 "the file ends early (truncated)");
  expect_refused(dir, "no_iend.png", Bytes(png.begin(), png.begin() + chunk_offset(png, "IEND")),
                 "truncated");
  expect_refused(dir, "cut_signature.png", Bytes(png.begin(), png.begin() + 5), "truncated");
  expect_refused(dir, "short.pgm", text_bytes("P5\n4 3\n255\n0123456789"),
                 "the PGM ends after 10 of its 12 samples (truncated)");
  expect_refused(dir, "short16.pgm", text_bytes("P5\n2 2\n65535\n\x01\x02\x03\x04\x05"),
                 "after 2 of its 4 samples");
  expect_refused(dir, "short.pgm2", text_bytes("P2\n2 2\n9\n1 2 3"), "after 3 of its 4 samples");
  expect_refused(dir, "header.pgm", text_bytes("P5\n4 # the height is missing\n"),
                 "the PGM header ends before its height (truncated)");
}

TEST(ImageFile, RefusesCorruptPng) {
  TempDir dir;
  Bytes png = noisy_png();
  Bytes bad_crc = png;
  bad_crc[8 + 8 + 13] ^= 0xff;  // IHDR's CRC: signature, length + type, 13 data bytes
  expect_refused(dir, "crc.png", bad_crc, "IHDR: CRC error");
  Bytes bad_data = png;
  bad_data[chunk_offset(png, "IDAT") + 8 + 100] ^= 0x55;  // caught by zlib or the CRC
  expect_refused(dir, "idat.png", bad_data, "cannot decode the PNG: ");
  Bytes garbage(208, 0xab);  // the signature, then nothing like a chunk
  std::copy(png.begin(), png.begin() + 8, garbage.begin());
  expect_refused(dir, "garbage.png", garbage, "cannot decode the PNG: ");
}

TEST(ImageFile, RefusesFilesThatAreNeitherPngNorPgm) {
  TempDir dir;
  const std::string neither = "neither a PNG nor a PGM image";
  expect_refused(dir, "text.png", text_bytes("hello, world\n"), neither);
  expect_refused(dir, "photo.png", {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F'}, neither);
  expect_refused(dir, "colour.pgm", text_bytes("P6\n1 1\n255\nabc"), neither);
  expect_refused(dir, "empty.pgm", {}, "an empty file");
  write_bytes(dir.file("text.pgm"), text_bytes("hello"));
  EXPECT_THROW(image_format_of(dir.file("text.pgm")), Error);
}

TEST(ImageFile, RefusesDirectoriesAndFifosWithoutBlocking) {
  TempDir dir;
  fs::create_directory(dir.path() / "folder.png");
  ASSERT_EQ(::mkfifo(dir.file("pipe.pgm").c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"folder.png", "is a directory"},
      {"pipe.pgm", "not a regular file"},
      {"absent.png", "cannot open"}};
  for (const auto& [name, problem] : cases) {
    const std::string path = dir.file(name);
    const std::string error = read_error(path);
    EXPECT_EQ(error.rfind(path + ": ", 0), 0u) << error;
    EXPECT_NE(error.find(problem), std::string::npos) << error;
    EXPECT_THROW(image_format_of(path), Error) << name;
  }
}

TEST(ImageFile, RefusesBadPgmMaxvalAndSamples) {
  TempDir dir;
  expect_refused(dir, "max0.pgm", text_bytes("P5\n1 1\n0\n1"), "maxval 0 is outside 1..65535");
  expect_refused(dir, "max65536.pgm", text_bytes("P2\n1 1\n65536\n1\n"),
                 "maxval 65536 is outside 1..65535");
  expect_refused(dir, "above.pgm", text_bytes("P5\n2 1\n100\n\x05\x65"),
                 "PGM sample 101 at row 0, column 1 is above its maxval 100");
  expect_refused(dir, "above16.pgm", text_bytes("P5\n1 1\n1000\n\x03\xe9"),
                 "PGM sample 1001 at row 0, column 0 is above its maxval 1000");
  expect_refused(dir, "above.pgm2", text_bytes("P2\n2 2\n9\n1 2\n3 10\n"),
                 "PGM sample 10 at row 1, column 1 is above its maxval 9");
  expect_refused(dir, "word.pgm", text_bytes("P2\n2 1\n9\n1 x\n"), "sample 1 is not a decimal");
  expect_refused(dir, "nows.pgm", text_bytes("P5\n1 1\n255x"), "no whitespace after maxval");
  expect_refused(dir, "minus.pgm", text_bytes("P5\n-1 1\n255\n"), "its width is not a number");
}

TEST(ImageFile, ListsImagesRecursivelyInByteOrder) {
  TempDir dir;
  const fs::path root = dir.path();
  for (const char* sub : {"a", "z/y", "dir.png"}) fs::create_directories(root / sub);
  for (const char* name : {"b.png", "A.png", "a.png", "a/c.PGM", "a/B.png", "a/d.jpg", "notes.txt",
                           "z/y/x.pgm", "z/y/readme", "dir.png/inner.pgm", "\xc3\xa9.png"})
    write_bytes(root / name, {0});
  fs::create_directory_symlink("..", root / "a/loop");      // a loop, not followed
  fs::create_directory_symlink("a", root / "dirlink.png");  // a directory: not listed
  fs::create_symlink("b.png", root / "link.png");           // a file: listed
  const std::vector<std::string> expected = {"A.png",    "a.png",     "a/B.png",
                                             "a/c.PGM",  "b.png",     "dir.png/inner.pgm",
                                             "link.png", "z/y/x.pgm", "\xc3\xa9.png"};
  EXPECT_EQ(list_image_files(root.string()), expected);

  EXPECT_TRUE(has_image_extension("x/Y.PnG"));
  EXPECT_TRUE(has_image_extension("a.pgm"));
  EXPECT_FALSE(has_image_extension("a.png.txt"));
  EXPECT_FALSE(has_image_extension("png"));
}

TEST(ImageFile, ListingADirectoryThatCannotBeReadThrows) {
  TempDir dir;
  for (const std::string& path : {dir.file("absent"), dir.file("file.png")}) {
    write_bytes(dir.file("file.png"), {0});
    try {
      list_image_files(path);
      ADD_FAILURE() << path;
    } catch (const Error& error) {
      EXPECT_EQ(std::string(error.what()).rfind(path + ": cannot list the directory", 0), 0u)
          << error.what();
    }
  }
  if (::geteuid() == 0) return;  // root reads a directory of mode 000 all the same
  fs::create_directories(dir.path() / "locked");
  fs::permissions(dir.path() / "locked", fs::perms::none);
  EXPECT_THROW(list_image_files(dir.path().string()), Error);
  fs::permissions(dir.path() / "locked", fs::perms::owner_all);
}

}  // namespace
}  // namespace dae
