#include "coordinator/job_access.h"

#include "absl/strings/str_cat.h"

namespace dpfleet::coordinator {
namespace {

bool IsOwner(const Principal& caller, const v1::Job& job) {
  return (caller.role == Role::kSubmitter || caller.role == Role::kAdmin) &&
         caller.name == job.owner();
}

absl::Status Denied(const Principal& caller, const v1::Job& job, const char* what) {
  return absl::PermissionDeniedError(absl::StrCat("'", caller.name, "' (", RoleName(caller.role),
                                                  ") may not ", what, " job ", job.job_id(),
                                                  ", which belongs to '", job.owner(), "'"));
}

// JobProgress and StepRecord name their diagnostics alike.
template <typename Record>
void ClearPrivateDiagnostics(Record& record) {
  record.clear_loss();
  record.clear_batch_size();
  record.clear_non_finite_examples();
}

}  // namespace

absl::Status CheckCanRead(const Principal& caller, const v1::Job& job) {
  if (IsOwner(caller, job) || caller.role == Role::kAdmin || caller.role == Role::kReader) {
    return absl::OkStatus();
  }
  return Denied(caller, job, "read");
}

absl::Status CheckCanCancel(const Principal& caller, const v1::Job& job) {
  if (IsOwner(caller, job) || caller.role == Role::kAdmin) return absl::OkStatus();
  return Denied(caller, job, "cancel");
}

v1::Job AsSeenBy(const Principal& caller, v1::Job job) {
  if (!IsOwner(caller, job)) ClearPrivateDiagnostics(*job.mutable_progress());
  return job;
}

v1::JobHistory AsSeenBy(const Principal& caller, const v1::Job& job, v1::JobHistory history) {
  if (!IsOwner(caller, job)) {
    for (v1::StepRecord& record : *history.mutable_steps()) ClearPrivateDiagnostics(record);
  }
  return history;
}

}  // namespace dpfleet::coordinator
