#ifndef DPFLEET_FEATURES_FEATURE_SHARD_H_
#define DPFLEET_FEATURES_FEATURE_SHARD_H_

// Feature shards: the frozen-backbone features of (a shard of) a private image dataset, written
// once by feature extraction and memory-mapped by the workers that finetune a linear head on them.
//
// File layout (little-endian), version 2:
//   bytes 0..63   header: magic "DPFSHARD", u32 version, u32 dtype (1 float32, 2 float16,
//                 3 bfloat16), u64 rows, u64 dim, u32 num_classes, u32 reserved (0),
//                 u64 checksum, u64 first_row, u64 total_rows
//   then          labels: rows x int32
//   then          features: rows x dim values of dtype, starting at a 64-byte aligned offset
// A shard is one part of a dataset that may be split over machines: it holds the dataset's rows
// [first_row, first_row + rows) of total_rows. Version 1 (the last 16 header bytes zero) is still
// read, as a shard holding its whole dataset.
// The checksum covers the header (with its checksum field zeroed) and everything after it, so a
// truncated, extended or corrupted shard is refused, never silently used.

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "features/mapped_file.h"

namespace dpfleet::features {

// Where a shard lies in its dataset: rows [first_row, first_row + rows) of total_rows.
// total_rows == 0 means the shard is the whole dataset.
struct ShardPlacement {
  int64_t first_row = 0;
  int64_t total_rows = 0;
};

// Writes a shard row block by row block, so that a part of a dataset larger than memory can be
// written as it is computed. The file appears at `path` only when Finish() succeeds (it is written
// as `path`.tmp and renamed); a writer destroyed before that removes its temporary file.
class FeatureShardWriter {
 public:
  // Starts a shard of `labels.size(0)` rows of `dim` features stored as `dtype` (kFloat, kHalf or
  // kBFloat16). Errors: kInvalidArgument for a label outside [0, num_classes), an unsupported dtype
  // or a placement that does not fit; kInternal when the file cannot be created.
  static absl::StatusOr<std::unique_ptr<FeatureShardWriter>> Create(
      const std::string& path, const at::Tensor& labels, int64_t dim, int64_t num_classes,
      at::ScalarType dtype, ShardPlacement placement = {});
  ~FeatureShardWriter();
  FeatureShardWriter(const FeatureShardWriter&) = delete;
  FeatureShardWriter& operator=(const FeatureShardWriter&) = delete;

  // Appends the next `features.size(0)` rows ([n, dim], any floating type). Errors:
  // kInvalidArgument for a wrong width, more rows than the labels, or a row that is not finite in
  // the shard's dtype (an inf or a NaN, or a value beyond float16's 65504), naming the dataset row;
  // kInternal on a write error.
  absl::Status Append(const at::Tensor& features);

  // Completes the checksum and publishes the file. Errors: kFailedPrecondition when rows are
  // missing; kInternal when the file cannot be written or renamed.
  absl::Status Finish();

  int64_t rows_written() const { return rows_written_; }

 private:
  struct State;
  explicit FeatureShardWriter(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
  int64_t rows_written_ = 0;
};

// Returns the first row of `features` [N, D] (any floating dtype) holding an inf or a NaN, or -1.
// Such a row would break the clip bound of every job that samples it (worker/clipping.h drops it,
// but a dataset should never hold one); shards and .npy imports are refused for one.
int64_t FirstNonFiniteRow(const at::Tensor& features);

// Writes `features` [N, D] and `labels` [N] as one shard (FeatureShardWriter, in one call).
absl::Status WriteFeatureShard(const std::string& path, const at::Tensor& features,
                               const at::Tensor& labels, int64_t num_classes, at::ScalarType dtype,
                               ShardPlacement placement = {});

// A memory-mapped shard. Not copyable; the tensors it hands out view the mapping and must not
// outlive it. Thread-safe for reading.
class FeatureShard {
 public:
  // Maps and checks `path`: header, sizes against the file's length, every label, and (when
  // `verify_checksum`) the checksum and every feature, which reads the whole file once. Errors:
  // kNotFound for a missing file; kDataLoss naming what is wrong (bad magic, unknown version or
  // dtype, truncated or over-long file, label out of range, a placement outside its dataset, and
  // with the checksum a checksum mismatch or a row that is not finite, by its dataset row).
  static absl::StatusOr<std::unique_ptr<FeatureShard>> Open(const std::string& path,
                                                            bool verify_checksum = true);
  ~FeatureShard();
  FeatureShard(const FeatureShard&) = delete;
  FeatureShard& operator=(const FeatureShard&) = delete;

  int64_t rows() const { return rows_; }
  int64_t dim() const { return dim_; }
  int64_t num_classes() const { return num_classes_; }
  at::ScalarType dtype() const { return dtype_; }
  // The shard's place in its dataset (placement().total_rows is never 0 here).
  ShardPlacement placement() const { return placement_; }

  // [rows, dim] of dtype(), viewing the mapping (no copy).
  at::Tensor features() const;
  // [rows] int32, viewing the mapping (no copy).
  at::Tensor labels() const;

 private:
  FeatureShard() = default;

  std::string path_;
  std::unique_ptr<MappedFile> file_;
  int64_t rows_ = 0;
  int64_t dim_ = 0;
  int64_t num_classes_ = 0;
  at::ScalarType dtype_ = at::kFloat;
  ShardPlacement placement_;
  size_t features_offset_ = 0;
};

// The file name of part `part` of `parts` of a split: "train-00003-of-00008.dpf". A dataset folder
// holds a split as `split`.dpf or as any of its parts.
std::string ShardFileName(const std::string& split, int64_t part, int64_t parts);

// Features computed elsewhere, memory-mapped from a .npy file (ReadNpyFeatures).
struct NpyFeatures {
  at::Tensor features;            // [N, D] float32 or float16, viewing `mapping`.
  at::Tensor labels;              // [N] int64 (a copy).
  std::shared_ptr<void> mapping;  // Keeps `features` valid.
};

// Maps a 2-D C-ordered float32 or float16 `.npy` features file (no copy: arrays far larger than
// memory are read through the page cache) and reads a 1-D integer `.npy` labels file. Errors:
// kNotFound; kDataLoss for a malformed, truncated or over-long file; kInvalidArgument for
// unsupported dtypes, Fortran order or mismatched N, or a row holding an inf or a NaN (named).
absl::StatusOr<NpyFeatures> ReadNpyFeatures(const std::string& features_path,
                                            const std::string& labels_path);

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_FEATURE_SHARD_H_
