#include "coordinator/job_table.h"

#include "absl/strings/str_cat.h"

namespace dpfleet::coordinator {
namespace {

absl::Status UnknownJob(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("unknown job '", job_id, "'"));
}

}  // namespace

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

void JobTable::Insert(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  jobs_[job.job_id()].job = job;
}

absl::StatusOr<v1::Job> JobTable::Get(const std::string& job_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  return it->second.job;
}

std::vector<v1::Job> JobTable::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<v1::Job> jobs;
  for (const auto& [id, entry] : jobs_) jobs.push_back(entry.job);
  return jobs;
}

absl::Status JobTable::Update(const std::string& job_id,
                              const std::function<void(v1::Job&)>& mutate) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  mutate(it->second.job);
  ++it->second.version;
  return absl::OkStatus();
}

absl::StatusOr<std::pair<v1::Job, int64_t>> JobTable::WaitForChange(const std::string& job_id,
                                                                    int64_t seen_version,
                                                                    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  const Entry* entry = &it->second;  // std::map entries never move.
  std::pair<const Entry*, int64_t> watched(entry, seen_version);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](std::pair<const Entry*, int64_t>* arg) {
                             return arg->first->version > arg->second;
                           },
                           &watched),
                       timeout);
  return std::make_pair(entry->job, entry->version);
}

absl::Status JobTable::RequestCancel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  if (IsTerminal(it->second.job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job '", job_id, "' already ended as ", v1::JobState_Name(it->second.job.state())));
  }
  it->second.cancel_requested = true;
  return absl::OkStatus();
}

bool JobTable::CancelRequested(const std::string& job_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second.cancel_requested;
}

}  // namespace dpfleet::coordinator
