#include "dpctl/progress_line.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpfleet::dpctl {

void StepRate::Observe(int64_t steps, absl::Time now) {
  if (!seen_.empty() && steps < seen_.back().first) seen_.clear();
  if (!seen_.empty() && steps == seen_.back().first) return;  // Not a step: keep its first time.
  seen_.emplace_back(steps, now);
  while (static_cast<int>(seen_.size()) > window_) seen_.pop_front();
}

std::optional<double> StepRate::StepsPerSecond() const {
  if (seen_.size() < 2) return std::nullopt;
  const double seconds = absl::ToDoubleSeconds(seen_.back().second - seen_.front().second);
  if (seconds <= 0) return std::nullopt;
  return (seen_.back().first - seen_.front().first) / seconds;
}

std::optional<absl::Duration> StepRate::Remaining(int64_t total) const {
  const std::optional<double> rate = StepsPerSecond();
  if (!rate || *rate <= 0) return std::nullopt;
  const int64_t left = std::max<int64_t>(0, total - seen_.back().first);
  return absl::Seconds(left / *rate);
}

std::string Clock(absl::Duration duration) {
  const int64_t seconds = absl::ToInt64Seconds(std::max(duration, absl::ZeroDuration()));
  if (seconds >= 3600) {
    return absl::StrFormat("%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60);
  }
  return absl::StrFormat("%d:%02d", seconds / 60, seconds % 60);
}

std::string ProgressLine(const v1::Job& job, const StepRate& rate, int width) {
  const int64_t total = std::max<int64_t>(1, job.total_steps());
  const int64_t step = std::min(job.progress().step(), total);
  std::string tail = absl::StrFormat(" %3d%% %d/%d  eps %.3f/%.3f", 100 * step / total, step, total,
                                     job.progress().epsilon_spent(), job.planned_epsilon());
  if (const std::optional<double> steps_per_second = rate.StepsPerSecond()) {
    const double examples = *steps_per_second * job.sampling_rate() * job.dataset_size();
    absl::StrAppend(
        &tail, absl::StrFormat("  %.0f ex/s  ETA %s", examples, Clock(*rate.Remaining(total))));
  }
  const std::string head = absl::StrFormat("%-9s ", v1::JobState_Name(job.state()));
  const int bar = std::clamp(width - static_cast<int>(head.size() + tail.size()) - 2, 10, 40);
  const int filled = static_cast<int>(bar * step / total);
  return absl::StrCat(head, "[", std::string(filled, '#'), std::string(bar - filled, '.'), "]",
                      tail);
}

}  // namespace dpfleet::dpctl
