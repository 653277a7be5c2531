#ifndef DPFLEET_COORDINATOR_JOB_TABLE_H_
#define DPFLEET_COORDINATOR_JOB_TABLE_H_

// The coordinator's jobs and their latest snapshots, with change notification for WatchJob. With a
// JobStore, every state change and every step lease is written durably before it takes effect.
// Each job's run history is written in batches: every kStepLease kept step records, at every
// evaluation, with every recovery record (so up to each checkpoint) and when the job's state
// changes; a crash loses at most the step records since, and those steps run again from the
// checkpoint and are recorded again.

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/job_store.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::coordinator {

// Returns true for SUCCEEDED, FAILED and CANCELLED.
bool IsTerminal(v1::JobState state);

// Thread-safe.
class JobTable {
 public:
  // Steps leased durably at a time: after a crash a job is charged at most this many steps more
  // than it ran.
  static constexpr int64_t kStepLease = 32;

  // `store` (may be null: nothing is persisted) must outlive the table.
  explicit JobTable(JobStore* store = nullptr) : store_(store) {}

  // Adds a job and persists it. Errors: kAlreadyExists when its job_id is taken (the stored job is
  // kept); those of the store.
  absl::Status Insert(const v1::Job& job);

  // Loads every stored job into the table; returns them with their step bounds.
  absl::StatusOr<std::vector<StoredJob>> Restore();

  // Makes sure step `step` (0-based, counting every step the job started, re-runs included) is
  // covered by the durable step bound, extending it by up to kStepLease steps, never beyond
  // `limit` (the steps the job has reserved; limit > step). Errors: kNotFound; those of the store.
  absl::Status LeaseSteps(const std::string& job_id, int64_t step, int64_t limit);

  // Records durably that exactly `steps_started` steps of the job have started and that no more
  // will before it runs again (its runner is suspending it), so a restart charges exactly those
  // instead of the leased bound. Errors: kInvalidArgument when steps_started exceeds the bound
  // (a step would have run unleased); kNotFound; those of the store.
  absl::Status SettleSteps(const std::string& job_id, int64_t steps_started);

  // Durably replaces the job's recovery record (nothing without a store). Errors: those of the
  // store.
  absl::Status SaveRecovery(const std::string& job_id, const v1::JobRecovery& recovery);

  // Adds the step's record to the job's history (coordinator/job_history.h: AddStepRecord) and
  // sets the job's progress from it. Errors: kNotFound; those of the store.
  absl::Status RecordStep(const std::string& job_id, const v1::StepRecord& record);

  // Adds an evaluation to the job's history, durably. Errors: kNotFound; those of the store.
  absl::Status RecordEvaluation(const std::string& job_id, const v1::EvaluationRecord& evaluation);

  // The job's whole history. Errors: kNotFound.
  absl::StatusOr<v1::JobHistory> History(const std::string& job_id) const;

  // Errors: kNotFound for an unknown id.
  absl::StatusOr<v1::Job> Get(const std::string& job_id) const;
  std::vector<v1::Job> List() const;

  // Applies `mutate` to the job, persists it when its state changed, and wakes its watchers.
  // Errors: kNotFound; those of the store.
  absl::Status Update(const std::string& job_id, const std::function<void(v1::Job&)>& mutate);

  // Waits up to `timeout` for the job to change after version `seen_version` (0: never seen), and
  // returns its snapshot and version (unchanged version on timeout). Errors: kNotFound.
  absl::StatusOr<std::pair<v1::Job, int64_t>> WaitForChange(const std::string& job_id,
                                                            int64_t seen_version,
                                                            absl::Duration timeout) const;

  // Asks a job to stop, durably: a restarted coordinator stops it too. Errors: kNotFound;
  // kFailedPrecondition when it already ended; those of the store.
  absl::Status RequestCancel(const std::string& job_id);
  bool CancelRequested(const std::string& job_id) const;

 private:
  struct Entry {
    v1::Job job;
    int64_t version = 1;
    bool cancel_requested = false;
    int64_t step_bound = 0;
    v1::JobHistory history;
    // The history's records from this step on are not stored yet (INT64_MAX: all are).
    int64_t unstored_from = std::numeric_limits<int64_t>::max();
    int64_t unstored_records = 0;
  };

  // Writes the history's unstored records, if any. Errors: those of the store.
  absl::Status StoreHistory(const std::string& job_id, Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const store_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_TABLE_H_
