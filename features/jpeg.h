#ifndef DPFLEET_FEATURES_JPEG_H_
#define DPFLEET_FEATURES_JPEG_H_

// JPEG decoding for feature extraction, through libjpeg-turbo.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dpfleet::features {

// Decodes the JPEG file at `path` to RGB, returning a uint8 tensor [H, W, 3]. Grayscale and CMYK
// (Adobe, inverted or not) images are converted to RGB. When `min_short_side` > 0 the decoder's
// DCT scaling (by 1/2, 1/4 or 1/8, the factors libjpeg-turbo accelerates) skips detail that a later
// resize to that shorter side would discard: the result's shorter side is the smallest such scaling
// that is still >= `min_short_side`, or the full size. Errors: kNotFound for a missing file;
// kDataLoss naming the file for anything that is not a decodable JPEG (a PNG renamed .JPEG, a
// truncated file); kResourceExhausted for an image of more than 2^26 pixels (a header may claim
// 65500 x 65500 in a few bytes).
absl::StatusOr<at::Tensor> DecodeJpeg(const std::string& path, int64_t min_short_side = 0);

// Encodes `rgb` (uint8 [H, W, 3]) as a baseline JPEG at `quality` (1..100) to `path`.
// Errors: kInvalidArgument for a wrong shape or type; kInternal when the file cannot be written.
absl::Status EncodeJpeg(const std::string& path, const at::Tensor& rgb, int quality = 90);

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_JPEG_H_
