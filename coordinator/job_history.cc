#include "coordinator/job_history.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dpfleet::coordinator {
namespace {

constexpr int32_t kDefaultPageSize = 1000;

// Drops the trailing records of `records` whose step is at or after `step`; returns whether any
// were.
template <typename Records>
bool DropFrom(int64_t step, Records& records) {
  const int before = records.size();
  while (!records.empty() && records.rbegin()->step() >= step) records.RemoveLast();
  return records.size() != before;
}

}  // namespace

int64_t HistoryStride(int64_t total_steps) {
  return std::max<int64_t>(1, (total_steps + kMaxHistoryPoints - 1) / kMaxHistoryPoints);
}

bool KeptInHistory(int64_t step, int64_t total_steps) {
  return step == total_steps || step % HistoryStride(total_steps) == 0;
}

int64_t AddStepRecord(const v1::StepRecord& record, int64_t total_steps, v1::JobHistory& history) {
  history.set_stride(HistoryStride(total_steps));
  history.set_max_points(kMaxHistoryPoints);
  bool changed = DropFrom(record.step(), *history.mutable_steps());
  changed = DropFrom(record.step(), *history.mutable_evaluations()) || changed;
  if (KeptInHistory(record.step(), total_steps)) {
    *history.add_steps() = record;
    changed = true;
  }
  return changed ? record.step() : -1;
}

int64_t AddEvaluation(const v1::EvaluationRecord& evaluation, v1::JobHistory& history) {
  DropFrom(evaluation.step(), *history.mutable_evaluations());
  *history.add_evaluations() = evaluation;
  return evaluation.step();
}

absl::StatusOr<v1::JobHistory> HistoryPage(const v1::JobHistory& history,
                                           const v1::GetJobHistoryRequest& request) {
  if (request.start_index() < 0 || request.page_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("start_index (", request.start_index(),
                                                   ") and page_size (", request.page_size(),
                                                   ") must not be negative"));
  }
  const int64_t size = std::min<int64_t>(
      request.page_size() == 0 ? kDefaultPageSize : request.page_size(), kMaxHistoryPoints);
  v1::JobHistory page;
  page.set_job_id(request.job_id());
  page.set_stride(history.stride());
  page.set_max_points(kMaxHistoryPoints);
  const int64_t kept = history.steps_size();
  const int64_t begin = std::min(request.start_index(), kept);
  const int64_t end = std::min(kept, begin + size);
  for (int64_t i = begin; i < end; ++i) *page.add_steps() = history.steps(i);
  if (request.start_index() == 0) *page.mutable_evaluations() = history.evaluations();
  page.set_next_start_index(end < kept ? end : 0);
  return page;
}

}  // namespace dpfleet::coordinator
