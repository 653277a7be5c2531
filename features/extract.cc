#include "features/extract.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "features/feature_shard.h"
#include "features/jpeg.h"

namespace dpfleet::features {
namespace {

// Decodes and transforms images [start, stop) into one batch [n, 3, crop, crop].
absl::StatusOr<at::Tensor> LoadBatch(const ImageFolder& folder, int64_t start, int64_t stop,
                                     const ImageTransform& transform) {
  const int64_t n = stop - start;
  at::Tensor batch = at::empty({n, 3, transform.crop, transform.crop}, at::kFloat);
  std::vector<absl::Status> statuses(n);
  at::parallel_for(0, n, 1, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      absl::StatusOr<at::Tensor> rgb = DecodeJpeg(folder.images[start + i].path, transform.resize);
      if (!rgb.ok()) {
        statuses[i] = rgb.status();
        continue;
      }
      batch[i].copy_(PrepareImage(*rgb, transform));
    }
  });
  for (const absl::Status& status : statuses) DPFLEET_RETURN_IF_ERROR(status);
  return batch;
}

}  // namespace

absl::StatusOr<ExtractionResult> ExtractFeatureShard(const ImageFolder& folder, int64_t begin,
                                                     int64_t end, Backbone& backbone,
                                                     const ExtractionOptions& options,
                                                     const std::string& path) {
  const int64_t total = static_cast<int64_t>(folder.images.size());
  if (begin < 0 || end > total || begin >= end) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot extract images [", begin, ", ", end, ") of a folder of ", total));
  }
  if (options.transform.crop > options.transform.resize || options.batch_size < 1) {
    return absl::InvalidArgumentError("need crop <= resize and a positive batch size");
  }
  const auto started = std::chrono::steady_clock::now();
  std::vector<int64_t> label_values;
  label_values.reserve(end - begin);
  for (int64_t i = begin; i < end; ++i) label_values.push_back(folder.images[i].label);
  const at::Tensor labels = at::tensor(label_values, at::kLong);

  auto load = [&](int64_t start) {
    return std::async(std::launch::async, LoadBatch, std::cref(folder), start,
                      std::min(end, start + options.batch_size), std::cref(options.transform));
  };
  std::unique_ptr<FeatureShardWriter> writer;
  int64_t dim = 0;
  std::future<absl::StatusOr<at::Tensor>> next = load(begin);
  for (int64_t start = begin; start < end; start += options.batch_size) {
    DPFLEET_ASSIGN_OR_RETURN(const at::Tensor images, next.get());
    if (start + options.batch_size < end) next = load(start + options.batch_size);
    DPFLEET_ASSIGN_OR_RETURN(const at::Tensor features, backbone.Embed(images));
    // Converted once, and checked as stored, so that a backbone activation beyond float16's range
    // is reported by its image (the writer, given the stored dtype, converts nothing).
    const at::Tensor stored = features.to(options.storage);
    if (const int64_t bad = FirstNonFiniteRow(stored); bad >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          folder.images[start + bad].path, ": its features are not finite as ",
          at::toString(options.storage),
          " (an activation beyond float16's 65504, or an inf or a NaN); store float32 or "
          "bfloat16"));
    }
    if (writer == nullptr) {
      dim = features.size(1);
      DPFLEET_ASSIGN_OR_RETURN(
          writer,
          FeatureShardWriter::Create(path, labels, dim, static_cast<int64_t>(folder.classes.size()),
                                     options.storage, ShardPlacement{begin, total}));
    }
    DPFLEET_RETURN_IF_ERROR(writer->Append(stored));
  }
  DPFLEET_RETURN_IF_ERROR(writer->Finish());
  ExtractionResult result;
  result.rows = end - begin;
  result.dim = dim;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace dpfleet::features
