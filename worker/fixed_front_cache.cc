#include "worker/fixed_front_cache.h"

namespace dpfleet::worker {

FixedFrontCache::FixedFrontCache(const models::Model& model, int64_t begin, int64_t end)
    : model_(model), begin_(begin), cached_(end - begin, false) {}

at::Tensor FixedFrontCache::Inputs(const std::vector<int64_t>& rows, const at::Tensor& examples) {
  std::vector<int64_t> missing_positions;
  std::vector<int64_t> slots(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    slots[i] = rows[i] - begin_;
    if (!cached_[slots[i]]) missing_positions.push_back(static_cast<int64_t>(i));
  }
  if (!missing_positions.empty()) {
    const at::Tensor positions = at::tensor(missing_positions, at::kLong);
    const at::Tensor fronted = model_.Preprocess(examples.index_select(0, positions));
    if (!values_.defined()) {
      std::vector<int64_t> shape = fronted.sizes().vec();
      shape[0] = static_cast<int64_t>(cached_.size());
      values_ = at::empty(shape, fronted.options());
    }
    std::vector<int64_t> missing_slots;
    for (const int64_t position : missing_positions) {
      // A row sampled twice in one call is transformed twice, stored once.
      if (!cached_[slots[position]]) ++cached_rows_;
      cached_[slots[position]] = true;
      missing_slots.push_back(slots[position]);
    }
    values_.index_copy_(0, at::tensor(missing_slots, at::kLong), fronted);
  }
  return values_.index_select(0, at::tensor(slots, at::kLong));
}

}  // namespace dpfleet::worker
