#ifndef DPFLEET_FEATURES_FEATURE_SHARD_H_
#define DPFLEET_FEATURES_FEATURE_SHARD_H_

// Feature shards: the frozen-backbone features of (a shard of) a private image dataset, written
// once by feature extraction and memory-mapped by the workers that finetune a linear head on them.
//
// File layout (little-endian), frozen at version 1:
//   bytes 0..63   header: magic "DPFSHARD", u32 version, u32 dtype (1 float32, 2 float16,
//                 3 bfloat16), u64 rows, u64 dim, u32 num_classes, u32 reserved (0),
//                 u64 checksum, 16 bytes reserved (0)
//   then          labels: rows x int32
//   then          features: rows x dim values of dtype, starting at a 64-byte aligned offset
// The checksum covers the header (with its checksum field zeroed) and everything after it, so a
// truncated, extended or corrupted shard is refused, never silently used.

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace dpfleet::features {

// Writes `features` [N, D] (any floating type; stored as `dtype`: kFloat, kHalf or kBFloat16) and
// `labels` [N] (integers in [0, num_classes)) to `path` through a temporary file and a rename.
// Errors: kInvalidArgument for mismatched shapes, a label out of range or an unsupported dtype;
// kInternal when the file cannot be written.
absl::Status WriteFeatureShard(const std::string& path, const at::Tensor& features,
                               const at::Tensor& labels, int64_t num_classes, at::ScalarType dtype);

// A memory-mapped shard. Not copyable; the tensors it hands out view the mapping and must not
// outlive it. Thread-safe for reading.
class FeatureShard {
 public:
  // Maps and checks `path`: header, sizes against the file's length, and (when `verify_checksum`)
  // the checksum, which reads the whole file once. Errors: kNotFound for a missing file; kDataLoss
  // naming what is wrong (bad magic, unknown version or dtype, truncated or over-long file,
  // checksum mismatch, label out of range).
  static absl::StatusOr<std::unique_ptr<FeatureShard>> Open(const std::string& path,
                                                            bool verify_checksum = true);
  ~FeatureShard();
  FeatureShard(const FeatureShard&) = delete;
  FeatureShard& operator=(const FeatureShard&) = delete;

  int64_t rows() const { return rows_; }
  int64_t dim() const { return dim_; }
  int64_t num_classes() const { return num_classes_; }
  at::ScalarType dtype() const { return dtype_; }

  // [rows, dim] of dtype(), viewing the mapping (no copy).
  at::Tensor features() const;
  // [rows] int32, viewing the mapping (no copy).
  at::Tensor labels() const;

 private:
  FeatureShard() = default;

  std::string path_;
  void* mapping_ = nullptr;
  size_t length_ = 0;
  int64_t rows_ = 0;
  int64_t dim_ = 0;
  int64_t num_classes_ = 0;
  at::ScalarType dtype_ = at::kFloat;
  size_t features_offset_ = 0;
};

// Reads features computed elsewhere: a 2-D C-ordered float32 or float16 `.npy` file and a 1-D
// integer
// `.npy` labels file. Returns {features [N, D], labels [N] int64}. Errors: kNotFound; kDataLoss for
// a malformed or truncated file; kInvalidArgument for unsupported dtypes, Fortran order or
// mismatched N.
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> ReadNpyFeatures(const std::string& features_path,
                                                                  const std::string& labels_path);

}  // namespace dpfleet::features

#endif  // DPFLEET_FEATURES_FEATURE_SHARD_H_
