#include "worker/augmentation.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpfleet::worker {
namespace {

constexpr int64_t kMaxViews = 64;

}  // namespace

absl::Status ValidateAugmentation(const AugmentationOptions& options,
                                  at::IntArrayRef example_shape) {
  if (options.views < 1 || options.views > kMaxViews) {
    return absl::InvalidArgumentError(
        absl::StrCat("augmentation views must be in [1, ", kMaxViews, "], got ", options.views));
  }
  if (options.crop_padding < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("augmentation crop_padding must be >= 0, got ", options.crop_padding));
  }
  if (options.views == 1) return absl::OkStatus();
  if (options.crop_padding == 0 && !options.horizontal_flip) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.views,
                     " augmentation views with neither a crop padding nor a horizontal flip "
                     "would all be the same image"));
  }
  if (example_shape.size() != 3) {
    return absl::FailedPreconditionError(absl::StrCat(
        "augmentation needs image inputs [C, H, W]; this dataset's examples have shape [",
        absl::StrJoin(example_shape, ", "), "]"));
  }
  if (options.crop_padding >= example_shape[1] || options.crop_padding >= example_shape[2]) {
    return absl::FailedPreconditionError(absl::StrCat(
        "augmentation crop_padding ", options.crop_padding, " must be below the image's sides ",
        example_shape[1], " x ", example_shape[2], " (reflection padding)"));
  }
  return absl::OkStatus();
}

at::Tensor AugmentedViews(const at::Tensor& images, const AugmentationOptions& options,
                          at::Generator& generator) {
  const int64_t views = options.views, pad = options.crop_padding;
  const int64_t height = images.size(2), width = images.size(3);
  const at::Tensor padded = pad > 0 ? at::reflection_pad2d(images, {pad, pad, pad, pad}) : images;
  const int64_t rows = images.size(0) * views;
  at::Tensor out = at::empty({rows, images.size(1), height, width}, images.options());
  const at::Tensor offsets = at::randint(2 * pad + 1, {rows, 2}, generator, at::kLong);
  const at::Tensor flips = options.horizontal_flip ? at::randint(2, {rows}, generator, at::kLong)
                                                   : at::zeros({rows}, at::kLong);
  const int64_t* offset = offsets.data_ptr<int64_t>();
  const int64_t* flip = flips.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    at::Tensor view =
        padded[r / views].narrow(1, offset[2 * r], height).narrow(2, offset[2 * r + 1], width);
    if (flip[r] != 0) view = view.flip({2});
    out[r].copy_(view);
  }
  return out;
}

}  // namespace dpfleet::worker
