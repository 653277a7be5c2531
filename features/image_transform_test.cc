#include "features/image_transform.h"

#include "gtest/gtest.h"

namespace dpfleet::features {
namespace {

TEST(PrepareImage, ResizesCropsAndNormalises) {
  const ImageTransform transform;
  at::Tensor red = at::zeros({300, 400, 3}, at::kByte);
  red.select(2, 0).fill_(255);
  const at::Tensor prepared = PrepareImage(red, transform);
  ASSERT_EQ(prepared.sizes(), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_NEAR(prepared[0].min().item<double>(), (1 - 0.485) / 0.229, 1e-4);
  EXPECT_NEAR(prepared[0].max().item<double>(), (1 - 0.485) / 0.229, 1e-4);
  EXPECT_NEAR(prepared[2].mean().item<double>(), -0.406 / 0.225, 1e-4);
}

TEST(PrepareImage, CropsTheCentre) {
  // A wide image whose left and right quarters are white: after resizing its height to 256
  // (width 512) the centre 224 columns lie inside the black middle.
  at::Tensor image = at::zeros({100, 200, 3}, at::kByte);
  image.slice(1, 0, 50).fill_(255);
  image.slice(1, 150, 200).fill_(255);
  const at::Tensor prepared = PrepareImage(image, ImageTransform{});
  EXPECT_NEAR(prepared[1].max().item<double>(), -0.456 / 0.224, 1e-3);
}

TEST(PrepareImage, UpscalesSmallImages) {
  ImageTransform transform;
  transform.resize = 40;
  transform.crop = 32;
  const at::Tensor prepared = PrepareImage(at::full({10, 20, 3}, 128, at::kByte), transform);
  EXPECT_EQ(prepared.sizes(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_NEAR(prepared[0].mean().item<double>(), (128 / 255.0 - 0.485) / 0.229, 1e-3);
}

}  // namespace
}  // namespace dpfleet::features
