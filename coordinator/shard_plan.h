#ifndef DPFLEET_COORDINATOR_SHARD_PLAN_H_
#define DPFLEET_COORDINATOR_SHARD_PLAN_H_

// Which worker trains on which rows of a dataset. Each rank Poisson-samples its own range with the
// job's rate, so the ranges must tile the dataset exactly: a row in no range, or in two, would
// break the sampling that the privacy accounting assumes.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::coordinator {

// The training rows [begin, end) of a dataset of `total` rows that one worker holds.
struct HeldRows {
  int64_t total = 0;
  int64_t begin = 0;
  int64_t end = 0;

  static HeldRows Whole(int64_t total) { return {total, 0, total}; }
  bool whole() const { return begin == 0 && end == total; }
};

// Rank r of the plan: candidate `candidate` trains on rows [begin, end).
struct ShardRange {
  size_t candidate = 0;
  int64_t begin = 0;
  int64_t end = 0;
};

// Chooses `count` of the candidates (`held`, in order of preference, all for one dataset) and
// their rows, returning the ranks in row order. When at least `count` candidates hold the whole
// dataset, the first `count` of them split it evenly. Otherwise the dataset lies in parts on
// different machines: candidates are chained from row 0, each taking every row it holds (the
// longest holding first), and the chain must take exactly `count` workers. Errors:
// kFailedPrecondition naming the first rows that no candidate holds, or the number of workers the
// parts need.
absl::StatusOr<std::vector<ShardRange>> PlanShards(const std::vector<HeldRows>& held, int count);

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_SHARD_PLAN_H_
