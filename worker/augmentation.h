#ifndef DPFLEET_WORKER_AUGMENTATION_H_
#define DPFLEET_WORKER_AUGMENTATION_H_

// Random views of training images for augmentation multiplicity (De et al. 2022, "Unlocking
// high-accuracy differentially private image classification through scale", Sec. 3.1): each
// sampled example is seen through several augmentations and its gradient is the mean over them,
// taken before clipping (ClippingOptions::views_per_example), so the sensitivity stays C while the
// gradient's variance from augmentation falls. The views depend on the example alone, so they cost
// nothing in privacy; their randomness need not be secret and comes from a seeded generator.

#include <ATen/ATen.h>

#include <cstdint>

#include "absl/status/status.h"

namespace dpfleet::worker {

struct AugmentationOptions {
  // Views per example; 1: no augmentation.
  int64_t views = 1;
  // Random crops: the image is padded by this many pixels on each side by reflection and a crop of
  // the original size taken at a uniformly random offset (De et al. use 4 on 32 x 32 images).
  int64_t crop_padding = 0;
  // Each view is mirrored left to right with probability 1/2.
  bool horizontal_flip = false;
};

// Returns OK when the options can augment images of `example_shape` ([C, H, W]). Errors:
// kInvalidArgument for views outside [1, 64], a negative padding, or views > 1 with no transform
// (the views would be identical); kFailedPrecondition for inputs that are not images (features
// [d]: a crop or flip of a feature vector means nothing) or a padding not below each side (a
// reflection needs it).
absl::Status ValidateAugmentation(const AugmentationOptions& options,
                                  at::IntArrayRef example_shape);

// Returns [B views, C, H, W]: `options.views` consecutive random views of each image of `images`
// [B, C, H, W] (validated options), each a reflect-padded random crop, mirrored or not.
at::Tensor AugmentedViews(const at::Tensor& images, const AugmentationOptions& options,
                          at::Generator& generator);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_AUGMENTATION_H_
