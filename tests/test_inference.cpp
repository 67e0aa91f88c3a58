// The inference side of the model (model/inference.hpp): tiles that partition each side with
// their margins, the fused forward on images of any size against LibTorch's, padding and tiling
// that change nothing the network would see, and a checkpoint's network loaded for inference.
#include <gtest/gtest.h>

#include "dae/core/error.hpp"
#include "dae/model/fused_conv_dae.hpp"
#include "dae/model/inference.hpp"
#include "dae/train/trained_model.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

ConvDae seeded_conv(Activation output = Activation::kNone) {
  torch::manual_seed(7);
  ConvDae model(output);
  init_xavier(*model, 0.05);
  return model;
}

TEST(InferenceTiles, PartitionEachSideWithMarginsOnTheNetworksGrid) {
  for (int length : {4, 28, 96, 100, 512, 516, 700, 1000, 1024, 4096}) {
    for (int max_tile : {0, 64, 128, 256, 512}) {
      const AxisTiles tiles = tile_axis(length, max_tile);
      ASSERT_FALSE(tiles.origin.empty());
      if (max_tile == 0 || length <= max_tile) {
        EXPECT_EQ(tiles.origin.size(), 1u);
        EXPECT_EQ(tiles.size, length);
      }
      if (max_tile > 0 && length > max_tile) {
        EXPECT_LE(tiles.size, max_tile);
      }
      int expected_begin = 0;
      for (std::size_t i = 0; i < tiles.origin.size(); ++i) {
        SCOPED_TRACE("length " + std::to_string(length) + ", tile " + std::to_string(max_tile) +
                     ", window " + std::to_string(i));
        EXPECT_EQ(tiles.origin[i] % kNetworkStride, 0);
        EXPECT_GE(tiles.origin[i], 0);
        EXPECT_LE(tiles.origin[i] + tiles.size, length);
        EXPECT_EQ(tiles.keep_begin[i], expected_begin);  // no gap, no overlap
        EXPECT_LE(tiles.keep_begin[i], tiles.keep_end[i]);
        // A kept pixel sees a margin's worth of real pixels on each side that is a cut.
        if (tiles.origin[i] > 0) {
          EXPECT_GE(tiles.keep_begin[i] - tiles.origin[i], kTileMargin);
        }
        if (tiles.origin[i] + tiles.size < length) {
          EXPECT_GE(tiles.origin[i] + tiles.size - tiles.keep_end[i], kTileMargin);
        }
        expected_begin = tiles.keep_end[i];
      }
      EXPECT_EQ(expected_begin, length);
    }
  }
  // Evenly spread: a 1024-pixel side in tiles of at most 512 takes three windows, not four.
  EXPECT_EQ(tile_axis(1024, 512).origin.size(), 3u);
}

TEST(InferenceForward, FusedEqualsLibTorchOnImagesOfAnySize) {
  for (Activation output : {Activation::kNone, Activation::kRelu, Activation::kSigmoid}) {
    ConvDae model = seeded_conv(output);
    for (auto [height, width] : {std::pair{28, 28}, {60, 100}, {12, 8}, {36, 200}}) {
      const torch::Tensor images = torch::rand({3, height, width});
      ImageDenoiser fused(*model, {0, true, 2});
      ImageDenoiser libtorch(*model, {0, false, 2});
      const torch::Tensor got = fused.denoise(images), expected = libtorch.denoise(images);
      EXPECT_EQ(got.sizes(), images.sizes());
      EXPECT_LT((got - expected).abs().max().item<float>(), 1e-5)
          << height << " x " << width << ", output " << name_of(output);
    }
  }
}

TEST(InferenceForward, DigitsGiveTheTrainingForwardsBits) {
  ConvDae model = seeded_conv();
  const torch::Tensor digits = torch::rand({30, 28, 28});
  FusedConvDaeStep step(*model, 30);
  const torch::Tensor expected = step.forward(digits.unsqueeze(1)).squeeze(1);
  ImageDenoiser denoiser(*model, {});
  EXPECT_TRUE(torch::equal(denoiser.denoise(digits), expected));
}

TEST(InferencePadding, OddSizesArePaddedByReflectionAndCroppedBack) {
  ConvDae model = seeded_conv();
  const torch::Tensor image = torch::rand({1, 29, 31});
  ImageDenoiser denoiser(*model, {});
  const torch::Tensor got = denoiser.denoise(image);
  ASSERT_EQ(got.sizes(), image.sizes());
  // What the network gives on the image mirrored out to 32 x 32, cropped.
  const torch::Tensor padded = torch::nn::functional::pad(
      image.unsqueeze(1), torch::nn::functional::PadFuncOptions({0, 1, 0, 3}).mode(torch::kReflect));
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model->forward(padded).squeeze(1).narrow(1, 0, 29).narrow(2, 0, 31);
  EXPECT_LT((got - expected).abs().max().item<float>(), 1e-5);
  EXPECT_THROW(denoiser.denoise(torch::rand({1, 3, 40})), Error);  // below 4 x 4
}

TEST(InferenceTiling, TiledLargeImageEqualsTheWholeImage) {
  ConvDae model = seeded_conv();
  // Smooth content plus noise, so that every window sees structure across its cuts.
  const torch::Tensor ramp = torch::linspace(0, 1, 700).unsqueeze(0).expand({1000, 700});
  const torch::Tensor image = (0.5 * ramp + 0.5 * torch::rand({1000, 700})).unsqueeze(0);
  ImageDenoiser whole(*model, {0, true, 1});
  ImageDenoiser tiled(*model, {128, true, 7});
  const torch::Tensor expected = whole.denoise(image), got = tiled.denoise(image);
  EXPECT_LT((got - expected).abs().max().item<float>(), 1e-5);
  // LibTorch's forward through tiles agrees too.
  ImageDenoiser tiled_libtorch(*model, {256, false, 4});
  EXPECT_LT((tiled_libtorch.denoise(image) - expected).abs().max().item<float>(), 1e-5);
}

TEST(TrainedModel, LoadsTheNetworkTheCheckpointNamesAndRefusesAMismatch) {
  testing::TempDir dir;
  auto write = [&](const ModelPtr& model, const std::string& path, const std::string& config) {
    testing::write_model_checkpoint(path, *model, config, 12);
  };
  ConvDae conv = seeded_conv(Activation::kSigmoid);
  write(conv.ptr(), dir.file("conv.h5"),
        "  model              conv\n  output-activation  sigmoid\n");
  const TrainedModel trained = load_trained_model(dir.file("conv.h5"));
  EXPECT_EQ(trained.step, 12);
  EXPECT_EQ(trained.options.kind, ModelKind::kConv);
  EXPECT_EQ(trained.model->output_activation, Activation::kSigmoid);
  const torch::Tensor images = torch::rand({2, 1, 28, 28});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(trained.model->forward(images), conv->forward(images)));

  ModelOptions mlp;
  mlp.kind = ModelKind::kMlp;
  write(make_model(mlp), dir.file("mlp.h5"), "  model              mlp\n");
  EXPECT_EQ(load_trained_model(dir.file("mlp.h5")).options.kind, ModelKind::kMlp);
  // A config that names another network than the parameters hold is a mismatch, not a guess.
  write(make_model(mlp), dir.file("lying.h5"), "  model              conv\n");
  try {
    load_trained_model(dir.file("lying.h5"));
    FAIL() << "loaded an mlp's parameters into a conv network";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("lying.h5"), std::string::npos) << error.what();
  }
  EXPECT_THROW(newest_checkpoint(dir.file("no-run")), Error);
}

}  // namespace
}  // namespace dae
