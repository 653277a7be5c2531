#ifndef DPFLEET_COORDINATOR_WORKER_POOL_H_
#define DPFLEET_COORDINATOR_WORKER_POOL_H_

// The registered workers: where they are, which datasets they hold, whether they are alive (recent
// heartbeat) and whether a job holds them.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "coordinator/shard_plan.h"

namespace dpfleet::coordinator {

struct WorkerRecord {
  std::string worker_id;
  std::string principal;  // The name on the certificate it registered with.
  std::string address;
  std::map<std::string, HeldRows> datasets;  // The training rows held, by dataset name.
  absl::Time last_heartbeat;
  std::string job_id;  // The job holding this worker, or empty.
};

// A worker given to a job, with the training rows its rank samples.
struct AcquiredWorker {
  WorkerRecord record;
  int64_t shard_begin = 0;
  int64_t shard_end = 0;
};

// Thread-safe.
class WorkerPool {
 public:
  // A worker is alive while its last heartbeat is younger than `heartbeat_timeout`.
  explicit WorkerPool(absl::Duration heartbeat_timeout);

  // Adds a worker and returns its new id, "w<pool>-<n>": the pool part is random, so that an id
  // handed out by a coordinator before it restarted never names another worker after (a worker
  // heartbeating with its old id must hear NOT_FOUND and register again). A worker registering
  // again from the same address (it restarted) replaces its old record. `principal` is the
  // caller's certificate name: a worker speaks only for itself. Errors: kPermissionDenied when the
  // address is registered by another principal (its record is kept).
  absl::StatusOr<std::string> Register(const std::string& principal, const std::string& address,
                                       const std::map<std::string, HeldRows>& datasets);

  // Records a heartbeat of worker `worker_id` from `principal`. Errors: kNotFound for an unknown
  // id (the worker must register again); kPermissionDenied when another principal registered it.
  absl::Status Heartbeat(const std::string& principal, const std::string& worker_id);

  // Returns the training-set size that live workers report for `dataset`. Errors: kNotFound when no
  // live worker holds it; kFailedPrecondition when workers disagree on its size.
  absl::StatusOr<int64_t> DatasetSize(const std::string& dataset) const;

  // Returns how many live workers hold `dataset`, or any part of it.
  int CountAlive(const std::string& dataset) const;

  // Checks that the live workers, busy or not, could run a job on `dataset` with `count` workers
  // (PlanShards). Errors: those of PlanShards.
  absl::Status CheckPlacement(const std::string& dataset, int count) const;

  // Assigns `count` idle live workers holding `dataset` to `job_id`, chosen and given rows by
  // PlanShards (ordered by id), and returns them in rank order; or an empty vector (assigning
  // none) when the idle workers cannot run the job now.
  std::vector<AcquiredWorker> Acquire(const std::string& dataset, int count,
                                      const std::string& job_id);

  // Frees every worker held by `job_id`.
  void ReleaseJob(const std::string& job_id);

  bool IsAlive(const std::string& worker_id) const;

  // Counts the worker as dead until its next heartbeat (it stopped answering a job's calls).
  void MarkDead(const std::string& worker_id);

  // Every registered worker, with whether it is alive now.
  std::vector<std::pair<WorkerRecord, bool>> List() const;

 private:
  bool AliveLocked(const WorkerRecord& worker) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The live workers holding `dataset` (only idle ones when `idle_only`), ordered by id.
  std::vector<const WorkerRecord*> HoldersLocked(const std::string& dataset, bool idle_only) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const absl::Duration heartbeat_timeout_;
  mutable absl::Mutex mu_;
  std::map<std::string, WorkerRecord> workers_ ABSL_GUARDED_BY(mu_);
  const std::string id_prefix_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_WORKER_POOL_H_
