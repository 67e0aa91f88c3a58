// Evaluation building blocks: metrics against hand-computed values, PNG round trips, grid
// layout, the corruption types, and the fully connected model.
#include <gtest/gtest.h>

#include <cmath>

#include "dae/core/error.hpp"
#include "dae/io/image_io.hpp"
#include "dae/eval/metrics.hpp"
#include "dae/model/model.hpp"
#include "dae/data/noise.hpp"
#include "fixtures.hpp"

namespace dae {
namespace {

TEST(Metrics, MseAndPsnrMatchHandComputedValues) {
  // Image 0 differs by 0.1 everywhere: MSE 0.01, PSNR 20 dB. Image 1 is exact: 100 dB cap.
  const torch::Tensor target = torch::zeros({2, 1, 4, 4});
  torch::Tensor output = target.clone();
  output[0].fill_(0.1);
  const torch::Tensor mse = per_image_mse(output, target);
  EXPECT_NEAR(mse[0].item<double>(), 0.01, 1e-7);
  EXPECT_EQ(mse[1].item<double>(), 0.0);
  const torch::Tensor psnr = per_image_psnr(output, target);
  EXPECT_NEAR(psnr[0].item<double>(), 20.0, 1e-4);
  EXPECT_NEAR(psnr[1].item<double>(), 100.0, 1e-9);
  // Half the pixels off by 0.5: MSE 0.125, PSNR 10 log10(8) = 9.0309 dB.
  torch::Tensor half = torch::zeros({1, 1, 2, 2});
  half[0][0][0].fill_(0.5);
  EXPECT_NEAR(per_image_mse(half, torch::zeros_like(half)).item<double>(), 0.125, 1e-7);
  EXPECT_NEAR(per_image_psnr(half, torch::zeros_like(half)).item<double>(), 9.0309, 1e-3);
}

TEST(Metrics, SsimMatchesTheClosedFormForConstantImagesAndIsOneForIdentity) {
  // Constant images a and b: every variance and covariance is 0, so
  // SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = 0.01^2.
  const double a = 0.2, b = 0.6, c1 = 1e-4;
  const torch::Tensor x = torch::full({1, 1, 16, 16}, a), y = torch::full({1, 1, 16, 16}, b);
  EXPECT_NEAR(per_image_ssim(x, y).item<double>(), (2 * a * b + c1) / (a * a + b * b + c1), 1e-5);
  torch::manual_seed(1);
  const torch::Tensor random = torch::rand({3, 1, 28, 28});
  const torch::Tensor same = per_image_ssim(random, random);
  EXPECT_TRUE(torch::allclose(same, torch::ones({3}), 1e-5, 1e-5));
  // Noise lowers it; more noise lowers it more.
  const double mild = per_image_ssim((random + 0.1 * torch::randn_like(random)), random)
                          .mean()
                          .item<double>();
  const double strong = per_image_ssim((random + 0.5 * torch::randn_like(random)), random)
                            .mean()
                            .item<double>();
  EXPECT_LT(mild, 1.0);
  EXPECT_LT(strong, mild);
}

// The textbook definition: one 2-D pass of the 11x11 Gaussian window (sigma 1.5), float64.
torch::Tensor reference_ssim(const torch::Tensor& x_image, const torch::Tensor& y_image) {
  const torch::Tensor x = x_image.to(torch::kFloat64), y = y_image.to(torch::kFloat64);
  const torch::Tensor t = torch::arange(11, torch::kFloat64) - 5.0;
  torch::Tensor g = torch::exp(-(t * t) / (2 * 1.5 * 1.5));
  g = g / g.sum();
  const torch::Tensor window = torch::outer(g, g).view({1, 1, 11, 11});
  auto blur = [&](const torch::Tensor& image) { return torch::conv2d(image, window); };
  const torch::Tensor mx = blur(x), my = blur(y);
  const torch::Tensor vx = blur(x * x) - mx * mx, vy = blur(y * y) - my * my;
  const torch::Tensor cxy = blur(x * y) - mx * my;
  const double c1 = 1e-4, c2 = 9e-4;
  return (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
      .flatten(1)
      .mean(1);
}

TEST(Metrics, SsimOfABatchMatchesTheTwoDimensionalWindowImageByImage) {
  torch::manual_seed(2);
  const torch::Tensor clean = torch::rand({120, 1, 28, 28});  // more than one slice of 50
  const torch::Tensor noisy = (clean + 0.3 * torch::randn_like(clean)).clamp(0, 1);
  const torch::Tensor ssim = per_image_ssim(noisy, clean);
  ASSERT_EQ(ssim.size(0), 120);
  EXPECT_TRUE(torch::allclose(ssim.to(torch::kFloat64), reference_ssim(noisy, clean), 1e-5, 1e-6));
}

TEST(ImageIo, PngRoundTripKeepsSizeAndPixels) {
  testing::TempDir dir;
  GrayImage image;
  image.width = 5;
  image.height = 3;
  for (int i = 0; i < 15; ++i) image.pixels.push_back(static_cast<std::uint8_t>(i * 17));
  write_png(dir.file("a.png"), image);
  const GrayImage back = read_png(dir.file("a.png"));
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.pixels, image.pixels);
  testing::write_bytes(dir.path() / "bad.png", {0x89, 'P', 'N', 'G', 1, 2, 3});
  EXPECT_THROW(read_png(dir.file("bad.png")), Error);
}

TEST(ImageIo, GridHasTheExpectedSizeAndClipsForDisplay) {
  // 3 rows x 10 columns of 28x28 cells, scaled 3x, 4-pixel gaps.
  torch::Tensor cells = torch::zeros({3, 10, 28, 28});
  cells[0][0].fill_(2.0);   // clipped to white
  cells[1][0].fill_(-1.0);  // clipped to black
  const GrayImage grid = tile(cells, 3, 4);
  EXPECT_EQ(grid.width, 10 * 84 + 11 * 4);
  EXPECT_EQ(grid.height, 3 * 84 + 4 * 4);
  EXPECT_EQ(grid.pixels[4 * grid.width + 4], 255);                // first cell
  EXPECT_EQ(grid.pixels[(4 + 84 + 4) * grid.width + 4], 0);       // second row's first cell
  EXPECT_EQ(grid.pixels[0], 128);                                 // gap
}

TEST(NoiseTypes, EachCorruptsTheRequestedFraction) {
  const torch::Tensor clean = torch::full({8, 1, 28, 28}, 0.5);
  NoiseSource salt_pepper(3, 0, 1, NoiseType::kSaltPepper), mask(3, 0, 1, NoiseType::kMask);
  const torch::Tensor sp = salt_pepper.corrupt(clean, 0.3);
  const double changed = sp.ne(0.5).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(changed, 0.3, 0.02);
  EXPECT_TRUE(torch::logical_or(sp.eq(0.0), torch::logical_or(sp.eq(1.0), sp.eq(0.5))).all()
                  .item<bool>());
  EXPECT_NEAR(sp.eq(1.0).to(torch::kFloat64).mean().item<double>(), 0.15, 0.02);
  const torch::Tensor masked = mask.corrupt(clean, 0.67);  // keeps a third
  EXPECT_NEAR(masked.eq(0.0).to(torch::kFloat64).mean().item<double>(), 0.67, 0.02);
  EXPECT_TRUE(torch::logical_or(masked.eq(0.0), masked.eq(0.5)).all().item<bool>());
  EXPECT_TRUE(mask.corrupt(clean, 0.0).equal(clean));
  EXPECT_THROW(parse_enum<NoiseType>("noise-type", "speckle"), Error);
}

TEST(MlpDae, HasAComparableSizeAndTheSameInterface) {
  MlpDae model;
  EXPECT_EQ(count_parameters(*model), 784 * 16 + 16 + 16 * 784 + 784);
  const torch::Tensor images = torch::rand({3, 1, 28, 28});
  EXPECT_EQ(model->encode(images).sizes(), (std::vector<std::int64_t>{3, 16}));
  EXPECT_EQ(model->forward(images).sizes(), images.sizes());
}

TEST(Init, XavierGivesGlorotBoundsAndZeroBiases) {
  torch::manual_seed(4);
  ConvDae model;
  init_xavier(*model);
  // Glorot uniform bound for encoder2: sqrt(6 / (16*25 + 32*25)).
  const double bound = std::sqrt(6.0 / (16 * 25 + 32 * 25));
  EXPECT_LE(model->encoder2->weight.abs().max().item<double>(), bound);
  EXPECT_GT(model->encoder2->weight.abs().max().item<double>(), 0.9 * bound);
  EXPECT_EQ(model->encoder2->bias.abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace dae
