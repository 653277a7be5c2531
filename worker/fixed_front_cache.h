#ifndef DPFLEET_WORKER_FIXED_FRONT_CACHE_H_
#define DPFLEET_WORKER_FIXED_FRONT_CACHE_H_

// Examples as a model with a fixed front sees them (models::Model::Preprocess, e.g. scattering
// features), computed the first time a step or an evaluation reads them, then kept. The front has
// no parameter and reads nothing but its example, so a cached value is exactly what computing it
// again would give: training on the cache is training on the examples. Filling it lazily spreads
// the cost over the first steps (each stays within its deadline) and skips rows never sampled.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "models/model.h"

namespace dpfleet::worker {

// Not thread-safe.
class FixedFrontCache {
 public:
  // Caches the rows [begin, end) of one split for `model`, which must outlive the cache.
  FixedFrontCache(const models::Model& model, int64_t begin, int64_t end);

  // Returns model.Preprocess(examples), where `examples` are the rows `rows` (inside [begin, end),
  // any order) in that order; only rows not cached yet are transformed.
  at::Tensor Inputs(const std::vector<int64_t>& rows, const at::Tensor& examples);

  // Rows transformed so far.
  int64_t cached_rows() const { return cached_rows_; }

 private:
  const models::Model& model_;
  int64_t begin_;
  std::vector<bool> cached_;
  at::Tensor values_;  // [end - begin, ...]: allocated at the first miss, filled row by row.
  int64_t cached_rows_ = 0;
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_FIXED_FRONT_CACHE_H_
