#include "coordinator/shard_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dpfleet::coordinator {

absl::StatusOr<std::vector<ShardRange>> PlanShards(const std::vector<HeldRows>& held, int count) {
  if (count < 1) return absl::InvalidArgumentError("a job needs at least one worker");
  if (held.empty()) return absl::FailedPreconditionError("no live worker holds the dataset");
  const int64_t total = held.front().total;
  std::vector<ShardRange> plan;
  for (size_t i = 0; i < held.size() && static_cast<int>(plan.size()) < count; ++i) {
    if (held[i].whole()) plan.push_back({i, 0, 0});
  }
  if (static_cast<int>(plan.size()) == count) {
    for (int rank = 0; rank < count; ++rank) {
      plan[rank].begin = total * rank / count;
      plan[rank].end = total * (rank + 1) / count;
    }
    return plan;
  }
  if (std::all_of(held.begin(), held.end(), [](const HeldRows& h) { return h.whole(); })) {
    return absl::FailedPreconditionError(absl::StrCat("num_workers is ", count, " but only ",
                                                      held.size(),
                                                      " available worker(s) hold the dataset"));
  }
  plan.clear();
  std::vector<bool> used(held.size(), false);
  for (int64_t row = 0; row < total;) {
    size_t best = held.size();
    for (size_t i = 0; i < held.size(); ++i) {
      if (!used[i] && held[i].begin == row &&
          (best == held.size() || held[i].end > held[best].end)) {
        best = i;
      }
    }
    if (best == held.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("no available worker holds the rows of the dataset that start at row ", row,
                       " (of ", total, ")"));
    }
    used[best] = true;
    plan.push_back({best, row, held[best].end});
    row = held[best].end;
  }
  if (static_cast<int>(plan.size()) != count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the dataset is held in parts: the available workers cover it with ", plan.size(),
        " worker(s); num_workers must be ", plan.size(), ", not ", count));
  }
  return plan;
}

}  // namespace dpfleet::coordinator
