#ifndef DPFLEET_COORDINATOR_JOB_RUNNER_H_
#define DPFLEET_COORDINATOR_JOB_RUNNER_H_

// Drives one job from QUEUED to a terminal state: waits for idle workers, assigns them shards (rank
// 0 first: it serves the rendezvous store the others join), runs the steps in lockstep with
// periodic checkpoints, evaluates, and charges the accountant for every step that was started,
// whatever the outcome. When a worker fails, the job resumes from its last checkpoint on the
// workers still alive (or replacements); the steps lost since the checkpoint ran and cost privacy,
// so they stay charged, and running them again is reserved anew with the accountant first. The
// checkpoint, the reservations and the attempt count are saved in the job store as they change,
// so a job also resumes after the coordinator itself restarts.
//
// What a job is charged: every step that was dispatched to its workers, and every step the
// accountant leased to them (coordinator/step_leaser.h: the workers run only leased steps, under
// the accountant's admission tickets, and the ledger charges at least what it leased). A job that
// fails before its first step (assignment, forming the collective group, a dead worker) is
// charged nothing for that attempt. After a crash, when the coordinator cannot know, a job is
// charged for its durable step bound (steps are leased ahead, JobTable::kStepLease at a time).
//
// Each attempt gets a fresh rendezvous secret, so only the ranks it was assigned to can form its
// collective group.
//
// Shutting down (Shutdown()) suspends instead of cancelling: a running job stops at the end of the
// steps it leased (or at its next step boundary when they would outlast shutdown_grace), saves a
// checkpoint of exactly that step and the exact count of its started steps, and frees its
// workers; a queued job stays queued. A restarted coordinator resumes them (Resume), with
// no step run twice and no attempt used up by the shutdown.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/tls.h"
#include "coordinator/accountant_client.h"
#include "coordinator/job_store.h"
#include "coordinator/job_table.h"
#include "coordinator/worker_pool.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::coordinator {

struct JobRunnerOptions {
  // Steps between checkpoints (taken from rank 0), from which a job resumes after a failure.
  int64_t checkpoint_every_steps = 25;
  // How many times a job is started in all (the first run and its resumptions).
  int max_attempts = 3;
  // After a failure, how long to wait for the job's number of workers before resuming on fewer.
  absl::Duration resume_wait = absl::Seconds(10);
  // How long a collective may wait for a peer before the workers give up on it.
  int collective_timeout_s = 60;
  // Deadline of short worker calls (assign, evaluate, release).
  absl::Duration control_deadline = absl::Seconds(30);
  // How often a queued job looks for idle workers.
  absl::Duration acquire_poll = absl::Milliseconds(200);
  // Steps leased from the accountant at a time (StepLeaser): a job that stops early is charged up
  // to this many minus one steps it did not run; each lease is one accountant call.
  int64_t lease_steps = 8;
  // While the coordinator shuts down, a job first runs the steps it has leased (they are charged
  // anyway) when they should take no longer than this; otherwise it suspends at once.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // The coordinator's certificate, presented to the workers, which accept WorkerService calls
  // from the coordinator role only; a worker must hold a worker certificate of the same CA.
  TlsMaterial tls;
};

class JobRunner {
 public:
  // All pointers must outlive the runner.
  JobRunner(JobTable* jobs, WorkerPool* workers, AccountantClient* accountant,
            const JobRunnerOptions& options)
      : jobs_(jobs), workers_(workers), accountant_(accountant), options_(options) {}

  // Runs job `job_id` (already in the table, its budget reserved) to SUCCEEDED, FAILED or
  // CANCELLED. Blocks until then; call it on a thread of its own.
  void Run(const std::string& job_id);

  // Makes every Run and Resume return soon, leaving its job to be resumed by the next coordinator:
  // at the next step boundary (a step in flight finishes first), or at once while it waits for
  // workers. Thread-safe; cannot be undone.
  void Shutdown() { shutting_down_ = true; }

  // Continues a job that was running when the coordinator stopped, from its last saved
  // checkpoint, counting the durable step bound as started (never fewer than ran, so never
  // under-charged). A job that has used up its attempts ends FAILED, and one whose cancellation
  // was requested ends CANCELLED, both charged for that bound. Blocks like Run.
  void Resume(const StoredJob& stored);

 private:
  // What a job has done so far, over every attempt.
  struct Progress {
    v1::JobRecovery durable;    // Saved in the job store whenever it changes.
    int64_t steps_started = 0;  // Each is charged.
  };
  struct Peer {
    WorkerRecord record;
    int64_t shard_begin = 0;  // The training rows this rank samples.
    int64_t shard_end = 0;
    std::unique_ptr<v1::WorkerService::Stub> stub;
  };

  enum class AttemptEnd {
    kCompleted,  // Every step ran.
    kSuspended,  // The coordinator is shutting down; the job is saved to resume where it stopped.
  };

  // Assigns the shards (resuming from `checkpoint` at `checkpoint_step` when set), has every rank
  // join the collective group, and runs the remaining steps, updating the checkpoint, the count of
  // started steps and the charges as it goes. Errors: kCancelled; kResourceExhausted when
  // re-running lost steps cannot be paid for; kDataLoss when progress cannot be recorded;
  // otherwise the failure of a worker call (resumable).
  absl::StatusOr<AttemptEnd> RunAttempt(const v1::Job& job, int attempt, std::vector<Peer>& peers,
                                        Progress& progress, absl::Duration step_deadline);

  // Saves what a restarted coordinator needs to go on from step `step` with nothing run twice: a
  // checkpoint of that step (unless the last one is of it), the exact count of started steps, and
  // the attempt count without this attempt. Errors: kDataLoss; a failed checkpoint call.
  absl::Status Suspend(const v1::Job& job, int attempt, int64_t step, const Peer& rank0,
                       Progress& progress);

  // Progress holding `recovery` and `steps_started`, with the job's own reservation when the
  // record names none (a new job, or one that stopped before its first save).
  static Progress ProgressFrom(const v1::Job& job, v1::JobRecovery recovery, int64_t steps_started);

  // Runs `job` (its snapshot when it starts or resumes) from `progress`.
  void RunFrom(const v1::Job& job, Progress progress);

  // Reserves the steps from `step` to the job's end again, before a re-run of steps lost to a
  // failure, and records the reservation durably. Errors: the accountant's (kResourceExhausted
  // when the budget cannot pay); kDataLoss.
  absl::Status ReserveRerun(const v1::Job& job, int attempt, int64_t step, Progress& progress);

  // Saves progress.durable. Errors: kDataLoss.
  absl::Status Save(const std::string& job_id, const Progress& progress);

  // Charges progress.steps_started steps across the reservations in order (committing, or
  // releasing a reservation no step reached; the ledger raises each to the steps it leased) and
  // records the job's end with the steps charged. A failed charge leaves its reservation open
  // (counting in full) and says so.
  void ChargeAndEnd(const v1::Job& job, v1::JobState state, const absl::Status& error,
                    const Progress& progress, v1::JobResult result);

  JobTable* const jobs_;
  WorkerPool* const workers_;
  AccountantClient* const accountant_;
  const JobRunnerOptions options_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_JOB_RUNNER_H_
