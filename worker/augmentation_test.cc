#include "worker/augmentation.h"

#include <ATen/CPUGeneratorImpl.h>

#include <set>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

// Returns (row offset, column offset, flipped) of the crop of `padded` [C, H', W'] that `view`
// [C, H, W] equals exactly, or (-1, -1, false) when none does.
std::tuple<int64_t, int64_t, bool> FindCrop(const at::Tensor& padded, const at::Tensor& view) {
  const int64_t height = view.size(1), width = view.size(2);
  for (int64_t i = 0; i + height <= padded.size(1); ++i) {
    for (int64_t j = 0; j + width <= padded.size(2); ++j) {
      const at::Tensor crop = padded.narrow(1, i, height).narrow(2, j, width);
      if (at::equal(crop, view)) return {i, j, false};
      if (at::equal(crop.flip({2}), view)) return {i, j, true};
    }
  }
  return {-1, -1, false};
}

TEST(AugmentedViews, EachViewIsAFlippedOrUnflippedCropOfItsOwnReflectPaddedImage) {
  at::Generator generator = at::detail::createCPUGenerator(7);
  const at::Tensor images = at::randn({3, 2, 10, 12}, generator);
  const AugmentationOptions options{.views = 16, .crop_padding = 3, .horizontal_flip = true};
  const at::Tensor views = AugmentedViews(images, options, generator);
  ASSERT_EQ(views.sizes(), (std::vector<int64_t>{48, 2, 10, 12}));
  const at::Tensor padded = at::reflection_pad2d(images, {3, 3, 3, 3});
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  int flipped = 0;
  for (int64_t r = 0; r < views.size(0); ++r) {
    const auto crop = FindCrop(padded[r / options.views], views[r]);
    ASSERT_GE(std::get<0>(crop), 0) << "view " << r << " is not a crop of image " << r / 16;
    seen.insert(crop);
    flipped += std::get<2>(crop) ? 1 : 0;
  }
  // 48 draws from 7 x 7 offsets x 2 flips: many distinct views, flips about half the time
  // (P(flipped outside [10, 38]) < 1e-4).
  EXPECT_GT(seen.size(), 20u);
  EXPECT_GE(flipped, 10);
  EXPECT_LE(flipped, 38);
}

TEST(AugmentedViews, FlipsOnlyAndCropsOnly) {
  at::Generator generator = at::detail::createCPUGenerator(8);
  const at::Tensor images = at::randn({2, 1, 6, 6}, generator);
  const at::Tensor flips = AugmentedViews(images, {.views = 8, .horizontal_flip = true}, generator);
  for (int64_t r = 0; r < flips.size(0); ++r) {
    const at::Tensor image = images[r / 8];
    EXPECT_TRUE(at::equal(flips[r], image) || at::equal(flips[r], image.flip({2})));
  }
  const at::Tensor crops = AugmentedViews(images, {.views = 8, .crop_padding = 2}, generator);
  const at::Tensor padded = at::reflection_pad2d(images, {2, 2, 2, 2});
  for (int64_t r = 0; r < crops.size(0); ++r) {
    const auto [i, j, flipped] = FindCrop(padded[r / 8], crops[r]);
    EXPECT_GE(i, 0);
  }
}

TEST(ValidateAugmentation, RefusesWhatCannotAugment) {
  EXPECT_TRUE(ValidateAugmentation({}, {784}).ok());  // One view: anything goes.
  EXPECT_TRUE(
      ValidateAugmentation({.views = 4, .crop_padding = 4, .horizontal_flip = true}, {1, 28, 28})
          .ok());
  EXPECT_EQ(ValidateAugmentation({.views = 0}, {1, 28, 28}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateAugmentation({.views = 65, .horizontal_flip = true}, {1, 28, 28}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateAugmentation({.views = 4}, {1, 28, 28}).code(),
            absl::StatusCode::kInvalidArgument);  // No transform.
  const absl::Status features = ValidateAugmentation({.views = 4, .horizontal_flip = true}, {2048});
  EXPECT_EQ(features.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(features.message().find("[2048]"), std::string::npos) << features;
  EXPECT_EQ(ValidateAugmentation({.views = 2, .crop_padding = 28}, {1, 28, 28}).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dpfleet::worker
