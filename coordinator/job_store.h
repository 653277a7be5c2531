#ifndef DPFLEET_COORDINATOR_JOB_STORE_H_
#define DPFLEET_COORDINATOR_JOB_STORE_H_

// The coordinator's durable record of its jobs (SQLite, WAL, synchronous=FULL), so a restart loses
// no job. Two things are written: the job's snapshot whenever its state changes, and, ahead of the
// steps, an upper bound on how many steps may have started (a "step lease"), so that after a crash
// the accountant can be charged for at least every step that ran without writing once per step.
// Each running job's recovery record (checkpoint, reservations, attempts), any request to cancel
// it, and its run history (coordinator/job_history.h) are kept too.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/sqlite.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::coordinator {

struct StoredJob {
  v1::Job job;
  int64_t step_bound = 0;    // No step at or beyond this index has started.
  v1::JobRecovery recovery;  // Empty until the job first runs.
  bool cancel_requested = false;
  v1::JobHistory history;  // Step records and evaluations in step order; no stride set.
};

// Thread-safe.
class JobStore {
 public:
  // Opens or creates the store. Errors: those of SqliteDb::Open.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);

  // Writes the job's snapshot (insert or replace). Errors: kUnavailable/kInternal from SQLite.
  absl::Status Put(const v1::Job& job);

  // Durably records that steps below `bound` may start. Errors: kNotFound for an unknown job.
  absl::Status SetStepBound(const std::string& job_id, int64_t bound);

  // Durably replaces the job's recovery record. Errors: kUnavailable/kInternal from SQLite.
  absl::Status PutRecovery(const std::string& job_id, const v1::JobRecovery& recovery);

  // Durably records that the job was asked to stop, so a restart does not run it on.
  // Errors: kUnavailable/kInternal from SQLite.
  absl::Status PutCancelRequest(const std::string& job_id);

  // Durably replaces the job's stored history from step `from_step` on with the records of
  // `history` at or after it, in one transaction. Errors: kUnavailable/kInternal from SQLite.
  absl::Status PutHistory(const std::string& job_id, int64_t from_step,
                          const v1::JobHistory& history);

  // Every stored job, in submission order. Errors: kDataLoss for an unreadable snapshot.
  absl::StatusOr<std::vector<StoredJob>> LoadAll();

 private:
  explicit JobStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::Mutex mu_;
  std::unique_ptr<SqliteDb> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_STORE_H_
