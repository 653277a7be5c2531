#ifndef DPFLEET_COORDINATOR_JOB_RUNNER_H_
#define DPFLEET_COORDINATOR_JOB_RUNNER_H_

// Drives one job from QUEUED to a terminal state: waits for idle workers, assigns them shards (rank 0
// first: it serves the rendezvous store the others join), runs the steps in lockstep, evaluates, and
// charges the accountant for every step that was started, whatever the outcome.

#include <string>

#include "absl/time/time.h"
#include "coordinator/accountant_client.h"
#include "coordinator/job_table.h"
#include "coordinator/worker_pool.h"

namespace dpfleet::coordinator {

struct JobRunnerOptions {
  // How long a collective may wait for a peer before the workers give up on it.
  int collective_timeout_s = 60;
  // Deadline of short worker calls (assign, evaluate, release).
  absl::Duration control_deadline = absl::Seconds(30);
  // How often a queued job looks for idle workers.
  absl::Duration acquire_poll = absl::Milliseconds(200);
};

class JobRunner {
 public:
  // All pointers must outlive the runner.
  JobRunner(JobTable* jobs, WorkerPool* workers, AccountantClient* accountant,
            const JobRunnerOptions& options)
      : jobs_(jobs), workers_(workers), accountant_(accountant), options_(options) {}

  // Runs job `job_id` (already in the table, its budget reserved) to SUCCEEDED, FAILED or CANCELLED.
  // Blocks until then; call it on a thread of its own.
  void Run(const std::string& job_id);

  // Ends a job that was running when the coordinator stopped: FAILED, charged for `step_bound`
  // steps (the durable upper bound on the steps that started; never fewer than ran).
  void ResolveInterrupted(const v1::Job& job, int64_t step_bound);

 private:
  // Charges the accountant for `steps_started` steps (or releases the reservation when none ran) and
  // records the job's end. A failed charge leaves the reservation open (counting in full) and says so.
  void ChargeAndEnd(const v1::Job& job, v1::JobState state, const absl::Status& error,
                    int64_t steps_started, v1::JobResult result);

  JobTable* const jobs_;
  WorkerPool* const workers_;
  AccountantClient* const accountant_;
  const JobRunnerOptions options_;
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_RUNNER_H_
