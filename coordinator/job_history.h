#ifndef DPFLEET_COORDINATOR_JOB_HISTORY_H_
#define DPFLEET_COORDINATOR_JOB_HISTORY_H_

// A job's run history (step records and evaluations) as the coordinator keeps it: bounded by
// decimation, replaced from the first re-run step when an attempt resumes from a checkpoint, and
// served in pages.

#include <cstdint>

#include "absl/status/statusor.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::coordinator {

// Step records kept per job, at most (plus the last step's).
inline constexpr int64_t kMaxHistoryPoints = 4096;

// Returns the smallest stride s >= 1 for which the steps s, 2s, ... of a `total_steps` job are at
// most kMaxHistoryPoints.
int64_t HistoryStride(int64_t total_steps);

// Returns true if the record of `step` (1-based) is kept: every stride-th step and the last.
bool KeptInHistory(int64_t step, int64_t total_steps);

// Adds `record` to `history`, first dropping the step records and evaluations at or after its
// step (they belong to an attempt that did not survive: the steps run again from a checkpoint).
// Returns the first step whose stored records changed, or -1 when nothing did (a step that is not
// kept and replaced nothing).
int64_t AddStepRecord(const v1::StepRecord& record, int64_t total_steps, v1::JobHistory& history);

// Adds `evaluation`, first dropping evaluations at or after its step. Returns its step.
int64_t AddEvaluation(const v1::EvaluationRecord& evaluation, v1::JobHistory& history);

// Returns the page of `history` that `request` asks for: step records from start_index, at most
// page_size (0: 1000, at most kMaxHistoryPoints), evaluations on the first page only.
// Errors: kInvalidArgument for a negative start_index or page_size.
absl::StatusOr<v1::JobHistory> HistoryPage(const v1::JobHistory& history,
                                           const v1::GetJobHistoryRequest& request);

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_HISTORY_H_
