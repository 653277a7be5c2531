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
  if (!IsOwner(caller, job)) {
    job.mutable_progress()->clear_loss();
    job.mutable_progress()->clear_batch_size();
    job.mutable_progress()->clear_non_finite_examples();
  }
  return job;
}

}  // namespace dpfleet::coordinator
