// Checkpoint files that must be refused: wrong shapes, other format versions, truncation.
#include <gtest/gtest.h>

#include "dae/train/checkpoint.hpp"
#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"
#include "dae/model/model.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

std::string load_error(const std::string& path) { return testing::checkpoint_load_error(path); }

// A checkpoint-shaped file holding `model`'s parameters, with the given format version.
void write_model_file(const std::string& path, torch::nn::Module& model, std::int64_t version) {
  H5File file = H5File::create(path);
  for (const auto& item : model.named_parameters()) {
    const torch::Tensor value = item.value().detach().contiguous();
    file.write<float>("/model/" + item.key(), {value.sizes().begin(), value.sizes().end()},
                      value.data_ptr<float>());
  }
  file.write_attribute("/", "format_version", version);
  file.write_attribute("/", "complete", std::int64_t{1});
}

// The seed's first layer with 8 instead of 16 channels.
struct NarrowDae : torch::nn::Module {
  NarrowDae() { register_module("encoder1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 5))); }
};

TEST(Checkpoint, ShapeMismatchNamesTheFirstParameter) {
  testing::TempDir dir;
  NarrowDae narrow;
  write_model_file(dir.file("narrow.h5"), narrow, kCheckpointFormatVersion);
  const std::string message = load_error(dir.file("narrow.h5"));
  EXPECT_NE(message.find("/model/encoder1.weight: shape [8,1,5,5] does not match the model's "
                         "[16,1,5,5]"),
            std::string::npos)
      << message;
}

TEST(Checkpoint, OtherFormatVersionIsRefused) {
  testing::TempDir dir;
  ConvDae model;
  write_model_file(dir.file("future.h5"), *model, kCheckpointFormatVersion + 1);
  EXPECT_NE(load_error(dir.file("future.h5")).find("checkpoint format version 2"),
            std::string::npos);
}

TEST(Checkpoint, IncompleteOrForeignFilesAreRefused) {
  testing::TempDir dir;
  H5File::create(dir.file("empty.h5")).close();
  EXPECT_NE(load_error(dir.file("empty.h5")).find("not a complete dae_dist checkpoint"),
            std::string::npos);
  testing::write_bytes(dir.path() / "junk.h5", std::vector<std::uint8_t>(1000, 7));
  EXPECT_NE(load_error(dir.file("junk.h5")).find("not an HDF5 file"), std::string::npos);
  EXPECT_NE(load_error(dir.file("absent.h5")).find("cannot open"), std::string::npos);
}

TEST(Checkpoint, ListsNewestFirstAndIgnoresTemporaries) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "checkpoints");
  for (const char* name : {"ckpt_00000010.h5", "ckpt_00000200.h5", "ckpt_00000030.h5",
                           "ckpt_00000300.h5.tmp", "notes.txt"})
    testing::write_bytes(dir.path() / "checkpoints" / name, {1});
  const auto paths = list_checkpoints(dir.path().string());
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_NE(paths[0].find("ckpt_00000200.h5"), std::string::npos);
  EXPECT_NE(paths[2].find("ckpt_00000010.h5"), std::string::npos);
}

}  // namespace
}  // namespace dae
