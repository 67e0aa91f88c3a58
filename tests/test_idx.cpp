// IDX reader on good and corrupted fixtures; dae_prepare's data-file round trip.
#include <gtest/gtest.h>

#include "dae/data/dataset.hpp"
#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/idx.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

using testing::idx_bytes;
using testing::TempDir;

std::string parse_error(const std::vector<std::uint8_t>& bytes) {
  try {
    parse_idx(bytes.data(), bytes.size(), "fixture");
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(Idx, ParsesDimsAndDataOfRawAndGzipFiles) {
  TempDir dir;
  const std::vector<std::uint8_t> data = {1, 2, 3, 4, 5, 6};
  testing::write_bytes(dir.path() / "raw", idx_bytes({2, 3}, data));
  testing::write_gzip(dir.path() / "packed.gz", idx_bytes({2, 3}, data));
  for (const char* name : {"raw", "packed.gz"}) {
    const IdxArray array = read_idx(dir.file(name));
    EXPECT_EQ(array.dims, (std::vector<std::uint32_t>{2, 3})) << name;
    EXPECT_EQ(array.data, data) << name;
  }
}

TEST(Idx, RejectsCorruptHeadersAndSizes) {
  const auto good = idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6});
  auto bad_magic = good;
  bad_magic[0] = 0x1F;
  EXPECT_NE(parse_error(bad_magic).find("wrong magic number"), std::string::npos);
  auto bad_type = good;
  bad_type[2] = 0x0D;
  EXPECT_NE(parse_error(bad_type).find("element type"), std::string::npos);
  auto no_dims = good;
  no_dims[3] = 0;
  EXPECT_NE(parse_error(no_dims).find("dimensions"), std::string::npos);
  const std::vector<std::uint8_t> truncated(good.begin(), good.end() - 2);
  EXPECT_NE(parse_error(truncated).find("truncated"), std::string::npos);
  auto trailing = good;
  trailing.push_back(7);
  EXPECT_NE(parse_error(trailing).find("unexpected bytes"), std::string::npos);
  EXPECT_NE(parse_error({0, 0}).find("truncated header"), std::string::npos);
  EXPECT_EQ(parse_error(good), "");
}

TEST(Idx, SplitValidationNamesTheFault) {
  auto split_error = [](IdxArray images, IdxArray labels) -> std::string {
    try {
      make_mnist_split(std::move(images), std::move(labels), "img", "lbl");
    } catch (const Error& error) {
      return error.what();
    }
    return "";
  };
  const std::vector<std::uint8_t> two_images(2 * 28 * 28, 0);
  EXPECT_EQ(split_error({{2, 28, 28}, two_images}, {{2}, {3, 9}}), "");
  EXPECT_NE(split_error({{2, 28, 27}, std::vector<std::uint8_t>(2 * 28 * 27)}, {{2}, {0, 1}})
                .find("img: wrong dimensions"),
            std::string::npos);
  EXPECT_NE(split_error({{2, 28, 28}, two_images}, {{3}, {0, 1, 2}}).find("2 images but lbl has 3"),
            std::string::npos);
  EXPECT_NE(split_error({{2, 28, 28}, two_images}, {{2}, {0, 10}}).find("label 10 at index 1"),
            std::string::npos);
}

TEST(Idx, MissingFileIsNamed) {
  TempDir dir;
  try {
    read_mnist_split(dir.path().string(), "train");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("train-images-idx3-ubyte: missing"),
              std::string::npos);
  }
}

TEST(DataFile, RoundTripKeepsEveryImageAndLabel) {
  TempDir dir;
  const MnistSplit train = testing::synthetic_split(37, 1);
  const MnistSplit test = testing::synthetic_split(11, 2);
  testing::write_idx_dir(dir.path() / "idx", train, test, /*gzip=*/true);
  const MnistSplit read_train = read_mnist_split((dir.path() / "idx").string(), "train");
  const MnistSplit read_test = read_mnist_split((dir.path() / "idx").string(), "t10k");
  write_data_file(dir.file("data.h5"), read_train, read_test, "fixture");

  const H5File file = H5File::open_read_only(dir.file("data.h5"));
  EXPECT_EQ(file.dims("/train/images"), (std::vector<std::uint64_t>{37, 28, 28}));
  EXPECT_EQ(file.read<std::uint8_t>("/train/images"), train.images);
  EXPECT_EQ(file.read<std::uint8_t>("/train/labels"), train.labels);
  EXPECT_EQ(file.read<std::uint8_t>("/test/images"), test.images);
  EXPECT_EQ(file.read<std::uint8_t>("/test/labels"), test.labels);
  EXPECT_EQ(file.read_string_attribute("/", "source"), "fixture");
  EXPECT_EQ(file.read_int_attribute("/", "format_version"), kDataFormatVersion);
  // Nothing but the data file is left in the directory: the temporary was renamed.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
    ++entries;
  EXPECT_EQ(entries, 2u);  // idx/ and data.h5
}

}  // namespace
}  // namespace dae
