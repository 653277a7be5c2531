#ifndef DPFLEET_DPCTL_PROGRESS_LINE_H_
#define DPFLEET_DPCTL_PROGRESS_LINE_H_

// What `dpctl watch` draws on a terminal: one line with a bar, step/total, epsilon spent of
// planned, examples/s and the time left.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::dpctl {

// The rate at which a job's steps complete, over the last `window` observations, from when each
// snapshot arrived (the watcher sees no other clock).
class StepRate {
 public:
  explicit StepRate(int window = 20) : window_(window) {}

  // Records that `steps` steps were done at `now`. A step count below the last one (an attempt
  // resumed from a checkpoint) starts the window again.
  void Observe(int64_t steps, absl::Time now);

  // Steps per second over the window; nullopt until two observations a step or more apart.
  std::optional<double> StepsPerSecond() const;

  // The time the remaining `total - steps` steps take at that rate; nullopt without a rate.
  std::optional<absl::Duration> Remaining(int64_t total) const;

 private:
  const int window_;
  std::deque<std::pair<int64_t, absl::Time>> seen_;
};

// Returns "H:MM:SS" (or "M:SS" under an hour).
std::string Clock(absl::Duration duration);

// Returns the one-line progress of `job` for a terminal `width` columns wide: state, bar,
// percentage, step/total, epsilon spent of planned, and with a rate the examples per second (of
// the expected batch) and the ETA.
std::string ProgressLine(const v1::Job& job, const StepRate& rate, int width = 100);

}  // namespace dpfleet::dpctl

#endif  // DPFLEET_DPCTL_PROGRESS_LINE_H_
