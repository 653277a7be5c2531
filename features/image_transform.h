#ifndef DPFLEET_FEATURES_IMAGE_TRANSFORM_H_
#define DPFLEET_FEATURES_IMAGE_TRANSFORM_H_

// The deterministic transform that turns a decoded image into a backbone's input.

#include <ATen/ATen.h>

#include <array>
#include <cstdint>

namespace dpfleet::features {

// Defaults are the usual ImageNet evaluation transform (resize 256, centre crop 224, the
// ImageNet channel means and standard deviations): use the transform the backbone was trained with.
struct ImageTransform {
  int64_t resize = 256;  // Shorter side after resizing.
  int64_t crop = 224;    // Side of the centre crop.
  std::array<double, 3> mean = {0.485, 0.456, 0.406};
  std::array<double, 3> stddev = {0.229, 0.224, 0.225};
};

// Returns float32 [3, crop, crop]: `rgb` (uint8 [H, W, 3]) resized with antialiased bilinear
// interpolation so that its shorter side is `resize`, centre-cropped, scaled to [0, 1] and
// normalised per channel. Requires crop <= resize.
at::Tensor PrepareImage(const at::Tensor& rgb, const ImageTransform& transform);

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_IMAGE_TRANSFORM_H_
