#ifndef DPFLEET_COORDINATOR_JOB_ACCESS_H_
#define DPFLEET_COORDINATOR_JOB_ACCESS_H_

// Who may see and stop which job. A job belongs to the principal that submitted it (Job.owner).
//   read (GetJob, WatchJob, ListJobs, GetJobHistory): its owner, admins and readers;
//   cancel: its owner and admins.
// The per-step loss and realised batch size are computed on the private sample and are not covered
// by the DP guarantee: only the owner sees them.

#include "absl/status/status.h"
#include "common/identity.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::coordinator {

// Returns OK if `caller` may read `job`; kPermissionDenied naming the job and the caller otherwise.
absl::Status CheckCanRead(const Principal& caller, const v1::Job& job);

// Returns OK if `caller` may cancel `job`; kPermissionDenied naming the job and the caller
// otherwise.
absl::Status CheckCanCancel(const Principal& caller, const v1::Job& job);

// Returns `job` as `caller` may see it: without the private diagnostics unless it is the owner.
v1::Job AsSeenBy(const Principal& caller, v1::Job job);

// Returns `history` (of `job`) as `caller` may see it: each step record without the private
// diagnostics unless it is the owner.
v1::JobHistory AsSeenBy(const Principal& caller, const v1::Job& job, v1::JobHistory history);

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_ACCESS_H_
