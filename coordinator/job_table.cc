#include "coordinator/job_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "coordinator/job_history.h"

namespace dpfleet::coordinator {
namespace {

absl::Status UnknownJob(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("unknown job '", job_id, "'"));
}

}  // namespace

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

absl::Status JobTable::Insert(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  if (jobs_.count(job.job_id()) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("job id '", job.job_id(), "' is taken"));
  }
  if (store_ != nullptr) {
    if (absl::Status stored = store_->Put(job); !stored.ok()) return stored;
  }
  jobs_[job.job_id()].job = job;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredJob>> JobTable::Restore() {
  if (store_ == nullptr) return std::vector<StoredJob>{};
  absl::StatusOr<std::vector<StoredJob>> stored = store_->LoadAll();
  if (!stored.ok()) return stored.status();
  absl::MutexLock lock(&mu_);
  for (const StoredJob& s : *stored) {
    Entry& entry = jobs_[s.job.job_id()];
    entry.job = s.job;
    entry.step_bound = s.step_bound;
    entry.cancel_requested = s.cancel_requested;
    entry.history = s.history;
  }
  return stored;
}

absl::Status JobTable::SaveRecovery(const std::string& job_id, const v1::JobRecovery& recovery) {
  if (store_ == nullptr) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  // The recovery record first: a history that cannot be written must not cost the checkpoint.
  if (absl::Status stored = store_->PutRecovery(job_id, recovery); !stored.ok()) return stored;
  return StoreHistory(job_id, it->second);
}

absl::Status JobTable::StoreHistory(const std::string& job_id, Entry& entry) {
  if (store_ == nullptr || entry.unstored_records == 0) return absl::OkStatus();
  if (absl::Status stored = store_->PutHistory(job_id, entry.unstored_from, entry.history);
      !stored.ok()) {
    return stored;
  }
  entry.unstored_from = std::numeric_limits<int64_t>::max();
  entry.unstored_records = 0;
  return absl::OkStatus();
}

absl::Status JobTable::RecordStep(const std::string& job_id, const v1::StepRecord& record) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  Entry& entry = it->second;
  v1::JobProgress* progress = entry.job.mutable_progress();
  progress->set_step(record.step());
  progress->set_total_steps(entry.job.total_steps());
  progress->set_loss(record.loss());
  progress->set_batch_size(record.batch_size());
  progress->set_noised_loss(record.noised_loss());
  progress->set_non_finite_examples(record.non_finite_examples());
  progress->set_epsilon_spent(record.epsilon_spent());
  ++entry.version;
  const int64_t changed_from = AddStepRecord(record, entry.job.total_steps(), entry.history);
  if (changed_from < 0) return absl::OkStatus();
  entry.unstored_from = std::min(entry.unstored_from, changed_from);
  if (++entry.unstored_records < kStepLease) return absl::OkStatus();
  return StoreHistory(job_id, entry);
}

absl::Status JobTable::RecordEvaluation(const std::string& job_id,
                                        const v1::EvaluationRecord& evaluation) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  Entry& entry = it->second;
  entry.unstored_from = std::min(entry.unstored_from, AddEvaluation(evaluation, entry.history));
  ++entry.unstored_records;
  ++entry.version;
  return StoreHistory(job_id, entry);
}

absl::StatusOr<v1::JobHistory> JobTable::History(const std::string& job_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  v1::JobHistory history = it->second.history;
  history.set_job_id(job_id);
  history.set_stride(HistoryStride(it->second.job.total_steps()));
  history.set_max_points(kMaxHistoryPoints);
  return history;
}

absl::Status JobTable::LeaseSteps(const std::string& job_id, int64_t step, int64_t limit) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  Entry& entry = it->second;
  if (step < entry.step_bound) return absl::OkStatus();
  const int64_t bound = std::min(limit, step + kStepLease);
  if (store_ != nullptr) {
    if (absl::Status stored = store_->SetStepBound(job_id, bound); !stored.ok()) return stored;
  }
  entry.step_bound = bound;
  return absl::OkStatus();
}

absl::Status JobTable::SettleSteps(const std::string& job_id, int64_t steps_started) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  Entry& entry = it->second;
  if (steps_started > entry.step_bound) {
    return absl::InvalidArgumentError(absl::StrCat("job '", job_id, "' claims ", steps_started,
                                                   " started steps, beyond its leased bound of ",
                                                   entry.step_bound));
  }
  if (store_ != nullptr) {
    if (absl::Status stored = store_->SetStepBound(job_id, steps_started); !stored.ok()) {
      return stored;
    }
  }
  entry.step_bound = steps_started;
  return absl::OkStatus();
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
  const v1::JobState before = it->second.job.state();
  mutate(it->second.job);
  ++it->second.version;
  if (store_ == nullptr || it->second.job.state() == before) return absl::OkStatus();
  // The state first: a history that cannot be written must not cost the job's end.
  if (absl::Status stored = store_->Put(it->second.job); !stored.ok()) return stored;
  return StoreHistory(job_id, it->second);
}

absl::StatusOr<std::pair<v1::Job, int64_t>> JobTable::WaitForChange(const std::string& job_id,
                                                                    int64_t seen_version,
                                                                    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  const Entry* entry = &it->second;  // std::map entries never move.
  std::pair<const Entry*, int64_t> watched(entry, seen_version);
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](std::pair<const Entry*, int64_t>* arg) { return arg->first->version > arg->second; },
          &watched),
      timeout);
  return std::make_pair(entry->job, entry->version);
}

absl::Status JobTable::RequestCancel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return UnknownJob(job_id);
  if (IsTerminal(it->second.job.state())) {
    return absl::FailedPreconditionError(absl::StrCat("job '", job_id, "' already ended as ",
                                                      v1::JobState_Name(it->second.job.state())));
  }
  if (store_ != nullptr) {
    if (absl::Status stored = store_->PutCancelRequest(job_id); !stored.ok()) return stored;
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
