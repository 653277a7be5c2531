#ifndef DPFLEET_FEATURES_EXTRACT_H_
#define DPFLEET_FEATURES_EXTRACT_H_

// Feature extraction: image folder -> decode -> transform -> frozen backbone -> feature shard.
// It computes on private data without noise; its output is as private as the images and stays on
// the machines that finetune on it.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "features/backbone.h"
#include "features/image_folder.h"
#include "features/image_transform.h"

namespace dpfleet::features {

struct ExtractionOptions {
  ImageTransform transform;
  int64_t batch_size = 64;
  at::ScalarType storage = at::kHalf;  // kFloat, kHalf or kBFloat16.
};

struct ExtractionResult {
  int64_t rows = 0;
  int64_t dim = 0;
  double seconds = 0;
};

// Writes the features of folder.images[begin, end) to a shard at `path`, placed as rows
// [begin, end) of the folder's images and labelled by the folder's classes. Images are decoded
// and transformed on the intra-op threads, one batch ahead of the backbone. Nothing appears at
// `path` unless every image was embedded. Errors: those of DecodeJpeg (naming the image),
// Backbone::Embed and FeatureShardWriter; kInvalidArgument for an empty or out-of-range
// [begin, end).
absl::StatusOr<ExtractionResult> ExtractFeatureShard(const ImageFolder& folder, int64_t begin,
                                                     int64_t end, Backbone& backbone,
                                                     const ExtractionOptions& options,
                                                     const std::string& path);

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_EXTRACT_H_
