// dae_denoise end to end, as a user runs it: folders of PNG and PGM files mirrored into the
// output folder, IDX and HDF5 arrays, the same bits on 1, 2 and 4 ranks, the noise and quality
// report, and every bad input refused with one line, a non-zero exit and no output.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "dae/core/files.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/idx.hpp"
#include "dae/io/image_file.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::run_command;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A checkpoint of a seeded network (no training needed to test what the program does with it).
void write_model(const std::string& path, ModelKind kind = ModelKind::kConv) {
  torch::manual_seed(11);
  ModelOptions options;
  options.kind = kind;
  options.init_bias = 0.05;
  const ModelPtr model = make_model(options);
  testing::write_model_checkpoint(path, *model, "  model              " + name_of(kind) + "\n");
}

Image random_image(int width, int height, int bit_depth, int seed) {
  Image image;
  image.width = width, image.height = height, image.bit_depth = bit_depth;
  const torch::Tensor pixels = torch::rand({height * width}, torch::Generator(
      at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(seed))));
  image.pixels.assign(pixels.data_ptr<float>(), pixels.data_ptr<float>() + pixels.numel());
  return image;
}

// A PNG whose header says `width` x `height` (gray, 8 bits) and that has no pixel data.
std::vector<std::uint8_t> png_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::uint8_t> bytes = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
  std::vector<std::uint8_t> chunk = {'I', 'H', 'D', 'R'};
  for (std::uint32_t value : {width, height})
    for (int shift = 24; shift >= 0; shift -= 8) chunk.push_back(static_cast<std::uint8_t>(value >> shift));
  chunk.insert(chunk.end(), {8, 0, 0, 0, 0});
  const uLong crc = crc32(0, chunk.data(), static_cast<uInt>(chunk.size()));
  bytes.insert(bytes.end(), chunk.begin(), chunk.end());
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(crc >> shift));
  return bytes;
}

class Denoise : public ::testing::Test {
 protected:
  void SetUp() override {
    write_model(dir.file("conv.h5"));
    fs::create_directories(dir.path() / "scans" / "nested");
    write_image(dir.file("scans/a.png"), random_image(28, 28, 8, 1), ImageFormat::kPng);
    write_image(dir.file("scans/nested/b.png"), random_image(100, 60, 16, 2), ImageFormat::kPng);
    write_image(dir.file("scans/nested/c.pgm"), random_image(33, 45, 8, 3), ImageFormat::kPgm);
    for (int i = 0; i < 4; ++i)
      write_image(dir.file("scans/digit" + std::to_string(i) + ".png"),
                  random_image(28, 28, 8, 10 + i), ImageFormat::kPng);
    // An HDF5 array of float images in [0, 1], and the same digits as an IDX file.
    const torch::Tensor digits = torch::rand({37, 28, 28});
    H5File file = H5File::create_in_memory("digits.h5");
    file.create_group("/test");
    file.write("/test/images", {37, 28, 28}, digits.data_ptr<float>());
    write_file_durably(dir.file("digits.h5"), file.image());
    const torch::Tensor bytes = digits.mul(255).round().to(torch::kUInt8).contiguous();
    testing::write_gzip(dir.path() / "digits.idx.gz",
                        testing::idx_bytes({37, 28, 28}, {bytes.data_ptr<std::uint8_t>(),
                                                          bytes.data_ptr<std::uint8_t>() + bytes.numel()}));
  }

  CommandResult denoise(const std::string& args, int ranks = 1) {
    const std::string launcher = ranks == 1 ? "" : testing::mpirun(ranks) + " ";
    return run_command("timeout 120 " + launcher + DAE_DENOISE_BIN + " --checkpoint " +
                       dir.file("conv.h5") + " " + args);
  }

  // Fails unless the command failed with one line naming `needle`, leaving `output` absent.
  void expect_refused(const std::string& args, const std::string& needle,
                      const std::string& output) {
    const CommandResult result = denoise(args);
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find(needle), std::string::npos) << result.output;
    EXPECT_EQ(testing::count_of(result.output, "dae_denoise:"), 1u) << result.output;
    EXPECT_FALSE(fs::exists(output)) << output;
  }

  std::vector<float> dataset_of(const std::string& path) {
    return H5File::open_read_only(path).read<float>("/test/images");
  }

  testing::TempDir dir;
};

TEST_F(Denoise, FolderIsMirroredFileByFileInItsFormatAndDepth) {
  const CommandResult result = denoise(dir.file("scans") + " --out " + dir.file("out"));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* name : {"a.png", "nested/b.png", "nested/c.pgm", "digit3.png"}) {
    const Image in = read_image(dir.file(std::string("scans/") + name), ColourPolicy::kRefuse);
    const Image out = read_image(dir.file(std::string("out/") + name), ColourPolicy::kRefuse);
    EXPECT_EQ(out.width, in.width) << name;
    EXPECT_EQ(out.height, in.height) << name;
    EXPECT_EQ(out.bit_depth, in.bit_depth) << name;
    EXPECT_EQ(image_format_of(dir.file(std::string("out/") + name)),
              image_format_of(dir.file(std::string("scans/") + name)));
  }
  // Never replaced without --overwrite; with it, the same bytes again.
  const std::string before = read_file(dir.file("out/nested/b.png"));
  const CommandResult again = denoise(dir.file("scans") + " --out " + dir.file("out"));
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("exists; pass --overwrite"), std::string::npos) << again.output;
  ASSERT_EQ(denoise(dir.file("scans") + " --out " + dir.file("out") + " --overwrite").exit_code, 0);
  EXPECT_EQ(read_file(dir.file("out/nested/b.png")), before);
}

TEST_F(Denoise, TwoAndFourRanksWriteTheBitsOfOne) {
  const std::string noise = " --add-noise 0.4 --seed 3";
  for (int ranks : {1, 2, 4}) {
    const std::string tag = std::to_string(ranks);
    const CommandResult folder =
        denoise(dir.file("scans") + " --out " + dir.file("out" + tag) + noise, ranks);
    ASSERT_EQ(folder.exit_code, 0) << folder.output;
    const CommandResult array = denoise("--dataset /test/images " + dir.file("digits.h5") +
                                            " --out " + dir.file("digits" + tag + ".h5") + noise,
                                        ranks);
    ASSERT_EQ(array.exit_code, 0) << array.output;
  }
  for (const char* ranks : {"2", "4"}) {
    for (const char* name : {"a.png", "nested/b.png", "nested/c.pgm", "digit0.png", "digit3.png"})
      EXPECT_EQ(read_file(dir.file(std::string("out") + ranks + "/" + name)),
                read_file(dir.file(std::string("out1/") + name)))
          << name << " at " << ranks << " ranks";
    EXPECT_EQ(dataset_of(dir.file(std::string("digits") + ranks + ".h5")),
              dataset_of(dir.file("digits1.h5")))
        << ranks << " ranks";
  }
}

TEST_F(Denoise, ArraysInHdf5AndIdxGiveTheNetworksOutput) {
  ASSERT_EQ(denoise("--dataset /test/images " + dir.file("digits.h5") + " --out " +
                    dir.file("out.h5")).exit_code, 0);
  const std::vector<float> floats = dataset_of(dir.file("out.h5"));
  ASSERT_EQ(floats.size(), 37u * 28 * 28);
  // The IDX file holds the same digits rounded to bytes; its output is the network's, rounded.
  const CommandResult idx = denoise(dir.file("digits.idx.gz") + " --out " + dir.file("out.idx"));
  ASSERT_EQ(idx.exit_code, 0) << idx.output;
  const IdxArray bytes = read_idx(dir.file("out.idx"));
  ASSERT_EQ(bytes.dims, (std::vector<std::uint32_t>{37, 28, 28}));
  double largest = 0;
  for (std::size_t i = 0; i < floats.size(); ++i)
    largest = std::max(largest, std::abs(bytes.data[i] / 255.0 -
                                         std::clamp(static_cast<double>(floats[i]), 0.0, 1.0)));
  EXPECT_LT(largest, 0.05);  // input rounding to bytes, then output rounding
}

TEST_F(Denoise, ReferenceReportsTheNoiseItAddedAndWritesJson) {
  const CommandResult result = denoise("--dataset /test/images " + dir.file("digits.h5") +
                                       " --out " + dir.file("out.h5") +
                                       " --add-noise 0.5 --reference");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("overall: 37 images"), std::string::npos) << result.output;
  const auto json = nlohmann::json::parse(read_file(dir.file("out.h5.summary.json")));
  // Gaussian noise of 0.5 on every pixel: the noisy input's MSE is 0.25 within sampling error.
  EXPECT_NEAR(json["overall"]["input"]["mse"].get<double>(), 0.25, 0.01) << json;
  EXPECT_EQ(json["overall"]["images"].get<double>(), 37);
  EXPECT_TRUE(json["overall"]["output"]["ssim"].is_number()) << json;
  EXPECT_EQ(json["files"].size(), 1u);
}

TEST_F(Denoise, BadInputsAreRefusedWithOneLineAndNoOutput) {
  const std::string out = dir.file("bad_out");
  testing::write_bytes(dir.path() / "huge.png", png_header_only(100000, 100000));
  expect_refused(dir.file("huge.png") + " --out " + out, "huge.png", out);
  testing::write_bytes(dir.path() / "empty.png", png_header_only(0, 0));
  expect_refused(dir.file("empty.png") + " --out " + out, "empty.png", out);
  write_image(dir.file("one.png"), random_image(1, 1, 8, 4), ImageFormat::kPng);
  expect_refused(dir.file("one.png") + " --out " + out, "one.png: 1 x 1 pixels", out);
  const std::string png = read_file(dir.file("scans/nested/b.png"));
  testing::write_bytes(dir.path() / "cut.png",
                       std::vector<std::uint8_t>(png.begin(), png.begin() + png.size() / 2));
  expect_refused(dir.file("cut.png") + " --out " + out, "cut.png", out);
  const std::string idx = read_file(dir.file("digits.idx.gz"));
  testing::write_bytes(dir.path() / "cut.idx.gz",
                       std::vector<std::uint8_t>(idx.begin(), idx.begin() + idx.size() / 2));
  expect_refused(dir.file("cut.idx.gz") + " --out " + out, "cut.idx.gz", out);
  testing::write_bytes(dir.path() / "noise.bin", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  expect_refused(dir.file("noise.bin") + " --out " + out, "noise.bin", out);

  torch::Tensor nan_digits = torch::rand({3, 28, 28});
  nan_digits[1][5][5] = std::nanf("");
  H5File nan_file = H5File::create_in_memory("nan.h5");
  nan_file.write("/images", {3, 28, 28}, nan_digits.data_ptr<float>());
  write_file_durably(dir.file("nan.h5"), nan_file.image());
  expect_refused("--dataset /images " + dir.file("nan.h5") + " --out " + out, "image 1 holds nan",
                 out);
  torch::Tensor bright = torch::rand({2, 28, 28}) * 255;
  H5File bright_file = H5File::create_in_memory("bright.h5");
  bright_file.write("/images", {2, 28, 28}, bright.data_ptr<float>());
  write_file_durably(dir.file("bright.h5"), bright_file.image());
  expect_refused("--dataset /images " + dir.file("bright.h5") + " --out " + out,
                 "must be finite, in [0, 1]", out);
  expect_refused("--dataset /nothing " + dir.file("digits.h5") + " --out " + out,
                 "no dataset /nothing", out);

  // Checkpoints: another model, a damaged file.
  write_model(dir.file("mlp.h5"), ModelKind::kMlp);
  const CommandResult mlp = run_command(std::string(DAE_DENOISE_BIN) + " --checkpoint " +
                                        dir.file("mlp.h5") + " " + dir.file("scans") + " --out " + out);
  EXPECT_NE(mlp.exit_code, 0);
  EXPECT_NE(mlp.output.find("an mlp model"), std::string::npos) << mlp.output;
  EXPECT_FALSE(fs::exists(out));
  std::string damaged = read_file(dir.file("conv.h5"));
  damaged.resize(damaged.size() / 3);
  write_file_durably(dir.file("damaged.h5"), damaged);
  const CommandResult broken = run_command(std::string(DAE_DENOISE_BIN) + " --checkpoint " +
                                           dir.file("damaged.h5") + " " + dir.file("scans") +
                                           " --out " + out);
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE(broken.output.find("damaged.h5"), std::string::npos) << broken.output;
  EXPECT_FALSE(fs::exists(out));

  // An output that is an input, or inside the input folder; --reference without noise.
  expect_refused("--dataset /test/images " + dir.file("digits.h5") + " --out " +
                     dir.file("digits.h5"),
                 "is an input", dir.file("never"));
  expect_refused(dir.file("scans") + " --out " + dir.file("scans/out"), "inside the input folder",
                 dir.file("scans/out"));
  expect_refused(dir.file("scans") + " --out " + out + " --reference", "needs --add-noise", out);
}

TEST_F(Denoise, ColourIsRefusedUnlessLuminanceIsAskedFor) {
  std::vector<std::uint8_t> rgb(12 * 8 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>(i * 7);
  testing::write_bytes(dir.path() / "colour.png", encode_png(12, 8, 3, rgb.data()));
  expect_refused(dir.file("colour.png") + " --out " + dir.file("c"), "colour.png", dir.file("c"));
  const CommandResult result =
      denoise(dir.file("colour.png") + " --out " + dir.file("c") + " --colour luminance");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(read_image(dir.file("c/colour.png"), ColourPolicy::kRefuse).width, 12);
}

}  // namespace
}  // namespace dae
