#include "coordinator/job_runner.h"

#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "accountant/accounting.h"
#include "common/grpc_status.h"
#include "common/random_id.h"
#include "common/status.h"
#include "coordinator/job_plan.h"
#include "coordinator/step_leaser.h"
#include "grpcpp/grpcpp.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::coordinator {
namespace {

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return context;
}

// Runs call(rank) for every rank concurrently. Returns OK, or the first failing rank's code with a
// message naming every worker that failed and why (one rank's timeout is often another's crash).
template <typename Peer>
absl::Status ForEachPeer(const std::vector<Peer>& peers, const std::string& what,
                         const std::function<grpc::Status(size_t rank)>& call) {
  std::vector<grpc::Status> statuses(peers.size());
  std::vector<std::thread> threads;
  for (size_t rank = 0; rank < peers.size(); ++rank) {
    threads.emplace_back([&, rank] { statuses[rank] = call(rank); });
  }
  for (std::thread& t : threads) t.join();
  absl::Status first;
  std::string failures;
  for (size_t rank = 0; rank < peers.size(); ++rank) {
    if (statuses[rank].ok()) continue;
    const absl::Status failure = FromGrpcStatus(statuses[rank]);
    if (first.ok()) first = failure;
    absl::StrAppend(&failures, failures.empty() ? "" : "; ", "on worker ",
                    peers[rank].record.worker_id, " (", peers[rank].record.address, ", rank ", rank,
                    "): ", failure.message());
  }
  if (first.ok()) return first;
  return absl::Status(first.code(), absl::StrCat(what, " failed ", failures));
}

// The job's own epsilon after `steps` steps, by the tightest method for its mechanism (exact for
// full batch, RDP otherwise), as the accountant's ComputeEpsilon reports it. Errors: those of the
// accounting (never shown as an epsilon of 0).
absl::StatusOr<double> EpsilonAfter(const v1::Job& job, int64_t steps) {
  return accountant::MechanismEpsilon({.sampling_rate = job.sampling_rate(),
                                       .noise_multiplier = AccountedNoiseMultiplier(job),
                                       .steps = steps},
                                      job.spec().delta(), accountant::AccountingMethod::kAuto);
}

// Test accuracy over every rank's test slice, and each rank's parameter fingerprint.
struct TestScore {
  int64_t correct = 0;
  int64_t examples = 0;
  std::vector<uint64_t> fingerprints;  // By rank.
};

// Has every rank evaluate its current parameters on its test slice (no training example is
// read). Errors: the failed calls, as ForEachPeer reports them.
template <typename Peer>
absl::StatusOr<TestScore> EvaluateOnPeers(const std::vector<Peer>& peers, const std::string& job_id,
                                          absl::Duration deadline) {
  std::vector<v1::EvaluateResponse> evaluations(peers.size());
  DPFLEET_RETURN_IF_ERROR(ForEachPeer(peers, "evaluation", [&](size_t rank) {
    v1::EvaluateRequest request;
    request.set_job_id(job_id);
    auto context = ContextWithDeadline(deadline);
    return peers[rank].stub->Evaluate(context.get(), request, &evaluations[rank]);
  }));
  TestScore score;
  for (const v1::EvaluateResponse& evaluation : evaluations) {
    score.correct += evaluation.correct();
    score.examples += evaluation.examples();
    score.fingerprints.push_back(evaluation.parameter_fingerprint());
  }
  return score;
}

v1::EvaluationRecord EvaluationRecordOf(const TestScore& score, int64_t step, double epsilon) {
  v1::EvaluationRecord record;
  record.set_step(step);
  record.set_test_accuracy(score.examples > 0 ? static_cast<double>(score.correct) / score.examples
                                              : 0.0);
  record.set_test_examples(score.examples);
  record.set_epsilon_spent(epsilon);
  return record;
}

// The record of step `step` (0-based) from every rank's answer: the loss is the mean over the
// realised batch; the noised loss (the same on every rank) and the throughput are over the
// expected batch, which is public.
v1::StepRecord StepRecordOf(const v1::Job& job, int64_t step,
                            const std::vector<v1::RunStepResponse>& responses,
                            absl::Duration step_time, double epsilon) {
  double loss_sum = 0;
  int64_t batch_size = 0, non_finite = 0;
  for (const v1::RunStepResponse& response : responses) {
    loss_sum += response.loss_sum();
    batch_size += response.local_batch_size();
    non_finite += response.non_finite_examples();
  }
  const double expected_batch = job.sampling_rate() * job.dataset_size();
  const double seconds = absl::ToDoubleSeconds(step_time);
  v1::StepRecord record;
  record.set_step(step + 1);
  record.set_epsilon_spent(epsilon);
  record.set_loss(batch_size > 0 ? loss_sum / batch_size : 0.0);
  record.set_batch_size(batch_size);
  record.set_non_finite_examples(non_finite);
  if (job.spec().loss_noise_multiplier() > 0) {
    record.set_noised_loss(responses[0].noised_loss_sum() / expected_batch);
  }
  record.set_step_seconds(seconds);
  record.set_examples_per_second(seconds > 0 ? expected_batch / seconds : 0.0);
  record.set_unix_ms(absl::ToUnixMillis(absl::Now()));
  return record;
}

// The steps the job's reservations hold together.
int64_t ReservedSteps(const v1::JobRecovery& recovery) {
  int64_t steps = 0;
  for (const v1::Reservation& reservation : recovery.reservations()) steps += reservation.steps();
  return steps;
}

}  // namespace

void JobRunner::ChargeAndEnd(const v1::Job& job, v1::JobState state, const absl::Status& error,
                             const Progress& progress, v1::JobResult result) {
  // Every started step is charged, reservation by reservation; what is left of each is freed.
  std::string message = error.ok() ? "" : std::string(error.message());
  // Commits `steps` of `reservation`; returns the steps the ledger charged.
  auto commit = [&](const v1::Reservation& reservation, int64_t steps) -> absl::StatusOr<int64_t> {
    v1::CommitRequest request;
    request.set_reservation_id(reservation.reservation_id());
    request.set_steps_run(steps);
    DPFLEET_ASSIGN_OR_RETURN(const v1::CommitResponse committed, accountant_->Commit(request));
    return committed.steps_committed();
  };
  int64_t remaining = progress.steps_started;
  int64_t steps_charged = 0;
  for (const v1::Reservation& reservation : progress.durable.reservations()) {
    const int64_t steps = std::min(remaining, reservation.steps());
    remaining -= steps;
    absl::StatusOr<int64_t> charged = int64_t{0};
    if (steps > 0) {
      charged = commit(reservation, steps);
    } else {
      v1::ReleaseRequest release;
      release.set_reservation_id(reservation.reservation_id());
      const absl::Status released = accountant_->Release(release);
      // Refused once the reservation has leased steps: they are charged by committing.
      if (absl::IsFailedPrecondition(released)) {
        charged = commit(reservation, 0);
      } else if (!released.ok()) {
        charged = released;
      }
    }
    if (charged.ok()) {
      steps_charged += *charged;
    } else {
      // The reservation stays open and keeps counting in full: the ledger over-counts, never under.
      steps_charged += reservation.steps();
      absl::StrAppend(&message, message.empty() ? "" : "; ", "reservation ",
                      reservation.reservation_id(), " stays open: ", charged.status().message());
      if (state == v1::SUCCEEDED) state = v1::FAILED;
    }
  }
  result.set_steps_run(progress.steps_started);
  result.set_steps_charged(steps_charged);
  if (const absl::StatusOr<double> epsilon = EpsilonAfter(job, steps_charged); epsilon.ok()) {
    result.set_epsilon_spent(*epsilon);
  } else {
    // The ledger holds the charge; only this figure is missing, and it says so rather than 0.
    result.set_epsilon_spent(std::numeric_limits<double>::quiet_NaN());
    absl::StrAppend(&message, message.empty() ? "" : "; ",
                    "the job's epsilon could not be computed: ", epsilon.status().ToString());
    if (state == v1::SUCCEEDED) state = v1::FAILED;
  }
  result.set_delta(job.spec().delta());
  jobs_
      ->Update(job.job_id(),
               [&](v1::Job& j) {
                 j.set_state(state);
                 j.set_error(message);
                 *j.mutable_result() = result;
                 j.mutable_progress()->set_epsilon_spent(result.epsilon_spent());
               })
      .IgnoreError();
}

absl::Status JobRunner::ReserveRerun(const v1::Job& job, int attempt, int64_t step,
                                     Progress& progress) {
  v1::ReserveRequest reserve;
  reserve.set_dataset(job.spec().dataset());
  reserve.set_job_id(job.job_id());
  reserve.set_idempotency_key(absl::StrCat(job.job_id(), "/resume-", attempt, "-", step));
  reserve.mutable_mechanism()->set_sampling_rate(job.sampling_rate());
  reserve.mutable_mechanism()->set_noise_multiplier(AccountedNoiseMultiplier(job));
  reserve.mutable_mechanism()->set_steps(job.total_steps() - step);
  reserve.set_clip_norm(job.spec().clip_norm());
  reserve.set_submitter(job.owner());
  const absl::StatusOr<v1::ReserveResponse> reserved = accountant_->Reserve(reserve);
  if (!reserved.ok()) {
    return Annotate(reserved.status(),
                    absl::StrCat("re-running steps from ", step, " after a failure"));
  }
  v1::Reservation* added = progress.durable.add_reservations();
  added->set_reservation_id(reserved->reservation_id());
  added->set_steps(job.total_steps() - step);
  return Save(job.job_id(), progress);
}

absl::Status JobRunner::Save(const std::string& job_id, const Progress& progress) {
  const absl::Status saved = jobs_->SaveRecovery(job_id, progress.durable);
  if (saved.ok()) return saved;
  return absl::DataLossError(absl::StrCat("cannot record progress durably: ", saved.message()));
}

JobRunner::Progress JobRunner::ProgressFrom(const v1::Job& job, v1::JobRecovery recovery,
                                            int64_t steps_started) {
  Progress progress{std::move(recovery), steps_started};
  if (progress.durable.reservations_size() == 0) {  // New, or stopped before its first save.
    v1::Reservation* own = progress.durable.add_reservations();
    own->set_reservation_id(job.reservation_id());
    own->set_steps(job.total_steps());
  }
  return progress;
}

void JobRunner::Run(const std::string& job_id) {
  const absl::StatusOr<v1::Job> job = jobs_->Get(job_id);
  if (!job.ok()) return;
  RunFrom(*job, ProgressFrom(*job, {}, 0));
}

void JobRunner::Resume(const StoredJob& stored) {
  const v1::Job& job = stored.job;
  Progress progress = ProgressFrom(job, stored.recovery, stored.step_bound);
  const std::string charged = absl::StrCat("it is charged for ", progress.steps_started,
                                           " steps, the durable upper bound on the steps that "
                                           "started");
  if (stored.cancel_requested) {
    return ChargeAndEnd(
        job, v1::CANCELLED,
        absl::CancelledError(absl::StrCat("cancelled before the coordinator restarted; ", charged)),
        progress, {});
  }
  if (progress.durable.attempts() - progress.durable.suspensions() >= options_.max_attempts) {
    return ChargeAndEnd(job, v1::FAILED,
                        absl::AbortedError(absl::StrCat(
                            "the coordinator stopped while the job ran, and it has used its ",
                            options_.max_attempts, " attempts; ", charged)),
                        progress, {});
  }
  jobs_
      ->Update(job.job_id(),
               [&](v1::Job& j) {
                 j.set_error(absl::StrCat("resuming from step ", progress.durable.checkpoint_step(),
                                          " after the coordinator restarted; ",
                                          progress.steps_started, " steps counted as started"));
               })
      .IgnoreError();
  RunFrom(job, std::move(progress));
}

void JobRunner::RunFrom(const v1::Job& job, Progress progress) {
  const std::string& job_id = job.job_id();
  const absl::Time started = absl::Now();
  const std::string& dataset = job.spec().dataset();

  std::vector<Peer> peers;

  // Frees the job's workers; a worker that does not answer is counted as dead.
  auto release_peers = [&] {
    for (const Peer& peer : peers) {
      auto context = ContextWithDeadline(absl::Seconds(5));
      v1::ReleaseShardRequest request;
      request.set_job_id(job_id);
      v1::ReleaseShardResponse response;
      if (!peer.stub->ReleaseShard(context.get(), request, &response).ok()) {
        workers_->MarkDead(peer.record.worker_id);
      }
    }
    workers_->ReleaseJob(job_id);
    peers.clear();
  };
  // Ends the job: frees the workers, charges the accountant for every started step, records the
  // state.
  auto finish = [&](v1::JobState state, absl::Status error, v1::JobResult result) {
    release_peers();
    result.set_wall_seconds(absl::ToDoubleSeconds(absl::Now() - started));
    ChargeAndEnd(job, state, error, progress, result);
  };

  const absl::Duration step_deadline =
      absl::Seconds(options_.collective_timeout_s) + options_.control_deadline;
  for (int attempt = progress.durable.attempts();; ++attempt) {
    // Wait for idle workers: the job's number, or after a failure whoever is left once
    // resume_wait has passed. A job suspended by a shutdown did not fail: it waits for all.
    const bool after_failure = attempt > 0 && !progress.durable.suspended();
    const absl::Time settle_for_fewer = absl::Now() + options_.resume_wait;
    std::vector<AcquiredWorker> acquired;
    // Busy workers are simply waited for. When even all the live ones could not run the job (a
    // worker holding part of the dataset died), the job says what it waits for, after what it
    // said before; it keeps waiting, for that worker or a replacement, until cancelled.
    const absl::StatusOr<v1::Job> current = jobs_->Get(job_id);
    const std::string said_before = current.ok() ? current->error() : "";
    std::string waiting_for;
    while (true) {
      int wanted = job.spec().num_workers();
      if (after_failure && absl::Now() > settle_for_fewer) {
        wanted = std::min(wanted, std::max(1, workers_->CountAlive(dataset)));
      }
      if (shutting_down_) {
        // Queued, or waiting to resume: the next coordinator goes on from here. Nothing more will
        // start, so the exact count of started steps replaces the leased bound.
        jobs_->SettleSteps(job_id, progress.steps_started).IgnoreError();  // Else: over-counts.
        return;
      }
      acquired = workers_->Acquire(dataset, wanted, job_id);
      if (!acquired.empty()) break;
      if (jobs_->CancelRequested(job_id)) {
        return finish(v1::CANCELLED, absl::CancelledError("cancelled while waiting for workers"),
                      {});
      }
      const absl::Status placeable = workers_->CheckPlacement(dataset, wanted);
      if (!placeable.ok() && placeable.message() != waiting_for &&
          (!after_failure || absl::Now() > settle_for_fewer)) {
        waiting_for = std::string(placeable.message());
        jobs_
            ->Update(job_id,
                     [&](v1::Job& j) {
                       j.set_error(absl::StrCat(said_before, said_before.empty() ? "" : "; ",
                                                "waiting for workers: ", waiting_for));
                     })
            .IgnoreError();
      }
      absl::SleepFor(options_.acquire_poll);
    }
    if (!waiting_for.empty()) {
      jobs_->Update(job_id, [&](v1::Job& j) { j.set_error(said_before); }).IgnoreError();
    }
    grpc::ChannelArguments channel_arguments;
    channel_arguments.SetMaxReceiveMessageSize(-1);  // Checkpoints can be large.
    for (AcquiredWorker& worker : acquired) {
      auto channel =
          MutualTlsChannel(worker.record.address, options_.tls, Role::kWorker, channel_arguments);
      peers.push_back({std::move(worker.record), worker.shard_begin, worker.shard_end,
                       v1::WorkerService::NewStub(channel)});
    }
    if (attempt == 0)
      jobs_->Update(job_id, [](v1::Job& j) { j.set_state(v1::RUNNING); }).IgnoreError();
    // Counted durably before it starts: a coordinator restart also counts as an attempt.
    progress.durable.set_attempts(attempt + 1);
    progress.durable.set_suspended(false);
    const absl::Status saved = Save(job_id, progress);
    const absl::StatusOr<AttemptEnd> ended =
        saved.ok() ? RunAttempt(job, attempt, peers, progress, step_deadline)
                   : absl::StatusOr<AttemptEnd>(saved);
    if (ended.ok() && *ended == AttemptEnd::kSuspended) {
      release_peers();
      jobs_
          ->Update(job_id,
                   [&](v1::Job& j) {
                     j.set_error(
                         absl::StrCat("suspended at step ", progress.durable.checkpoint_step(),
                                      " while the coordinator shuts down; ", progress.steps_started,
                                      " steps started, charged when the job ends"));
                   })
          .IgnoreError();
      return;
    }
    if (ended.ok()) {
      // Evaluate on the held-out split: each worker scores its slice, and reports its parameters.
      const absl::StatusOr<TestScore> score =
          EvaluateOnPeers(peers, job_id, options_.control_deadline);
      if (!score.ok()) return finish(v1::FAILED, score.status(), {});
      const absl::StatusOr<double> epsilon = EpsilonAfter(job, progress.steps_started);
      if (!epsilon.ok()) return finish(v1::FAILED, epsilon.status(), {});
      const v1::EvaluationRecord evaluation =
          EvaluationRecordOf(*score, job.total_steps(), *epsilon);
      if (absl::Status recorded = jobs_->RecordEvaluation(job_id, evaluation); !recorded.ok()) {
        return finish(v1::FAILED, Annotate(recorded, "recording the final evaluation"), {});
      }
      v1::JobResult result;
      for (uint64_t fingerprint : score->fingerprints)
        result.add_parameter_fingerprints(fingerprint);
      result.set_test_accuracy(evaluation.test_accuracy());
      return finish(v1::SUCCEEDED, absl::OkStatus(), result);
    }
    const absl::Status& failure = ended.status();
    if (absl::IsCancelled(failure)) return finish(v1::CANCELLED, failure, {});
    if (absl::IsResourceExhausted(failure) || absl::IsDataLoss(failure) ||
        attempt + 1 - progress.durable.suspensions() >= options_.max_attempts) {
      return finish(v1::FAILED, Annotate(failure, absl::StrCat("attempt ", attempt + 1)), {});
    }
    // Resume from the last checkpoint on the workers still alive.
    release_peers();
    jobs_
        ->Update(
            job_id,
            [&](v1::Job& j) {
              j.set_error(absl::StrCat("resuming from step ", progress.durable.checkpoint_step(),
                                       " after: ", failure.message()));
            })
        .IgnoreError();
  }
}

absl::Status JobRunner::Suspend(const v1::Job& job, int attempt, int64_t step, const Peer& rank0,
                                Progress& progress) {
  if (step > progress.durable.checkpoint_step()) {
    auto context = ContextWithDeadline(options_.control_deadline);
    v1::CheckpointRequest request;
    request.set_job_id(job.job_id());
    v1::CheckpointResponse response;
    const grpc::Status saved = rank0.stub->Checkpoint(context.get(), request, &response);
    if (!saved.ok()) return Annotate(FromGrpcStatus(saved), "checkpoint before suspending");
    if (response.step() != step) {
      return absl::InternalError(absl::StrCat("rank 0 checkpointed step ", response.step(),
                                              " while suspending at step ", step));
    }
    progress.durable.set_checkpoint(response.state());
    progress.durable.set_checkpoint_step(step);
  }
  progress.durable.set_attempts(attempt + 1);
  progress.durable.set_suspensions(progress.durable.suspensions() + 1);
  progress.durable.set_suspended(true);
  DPFLEET_RETURN_IF_ERROR(Save(job.job_id(), progress));
  // Saved after the checkpoint: a crash in between leaves the leased bound, which over-counts.
  if (absl::Status settled = jobs_->SettleSteps(job.job_id(), progress.steps_started);
      !settled.ok()) {
    return absl::DataLossError(
        absl::StrCat("cannot record the started steps: ", settled.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobRunner::AttemptEnd> JobRunner::RunAttempt(const v1::Job& job, int attempt,
                                                            std::vector<Peer>& peers,
                                                            Progress& progress,
                                                            absl::Duration step_deadline) {
  const std::string& job_id = job.job_id();
  // Assign shards: rank 0 first, since it serves the store the others connect to.
  DPFLEET_ASSIGN_OR_RETURN(const std::string rendezvous_secret, RandomBytes(16));
  v1::ShardAssignment assignment;
  assignment.set_rendezvous_secret(rendezvous_secret);
  assignment.set_job_id(job_id);
  *assignment.mutable_spec() = job.spec();
  assignment.set_world_size(static_cast<int32_t>(peers.size()));
  assignment.set_sampling_rate(job.sampling_rate());
  assignment.set_noise_multiplier(job.noise_multiplier());
  assignment.set_total_steps(job.total_steps());
  assignment.set_dataset_size(job.dataset_size());
  assignment.set_collective_timeout_s(options_.collective_timeout_s);
  assignment.set_checkpoint(progress.durable.checkpoint());
  assignment.set_checkpoint_step(progress.durable.checkpoint_step());
  assignment.set_attempt(attempt);
  std::vector<std::string> session_nonces(peers.size());
  auto assign = [&](size_t rank) {
    v1::AssignShardRequest request;
    *request.mutable_assignment() = assignment;
    request.mutable_assignment()->set_rank(static_cast<int32_t>(rank));
    request.mutable_assignment()->set_shard_begin(peers[rank].shard_begin);
    request.mutable_assignment()->set_shard_end(peers[rank].shard_end);
    v1::AssignShardResponse response;
    auto context = ContextWithDeadline(options_.control_deadline);
    grpc::Status status = peers[rank].stub->AssignShard(context.get(), request, &response);
    session_nonces[rank] = response.session_nonce();
    if (status.ok() && rank == 0) {
      assignment.set_store_host(response.store_host());
      assignment.set_store_port(response.store_port());
    }
    return status;
  };
  if (grpc::Status first = assign(0); !first.ok()) {
    return Annotate(FromGrpcStatus(first),
                    absl::StrCat("assigning rank 0 to worker ", peers[0].record.worker_id));
  }
  DPFLEET_RETURN_IF_ERROR(ForEachPeer(peers, "assigning the shard", [&](size_t rank) {
    return rank == 0 ? grpc::Status::OK : assign(rank);
  }));
  // The group's tickets: the accountant leases its steps to exactly these ranks and shards.
  std::vector<v1::ShardRange> shards(peers.size());
  for (size_t rank = 0; rank < peers.size(); ++rank) {
    shards[rank].set_begin(peers[rank].shard_begin);
    shards[rank].set_end(peers[rank].shard_end);
  }
  StepLeaser leaser(
      session_nonces, shards, progress.durable.checkpoint_step(), job.total_steps(),
      options_.lease_steps, &progress.durable.reservations(),
      [&](const v1::LeaseRequest& request) { return accountant_->Lease(request); },
      [&](int64_t step) { return ReserveRerun(job, attempt, step, progress); });
  DPFLEET_ASSIGN_OR_RETURN(const v1::AdmissionTicket join_ticket, leaser.JoinTicket());
  // The group forms before any step is dispatched, so an attempt that cannot form it (a peer
  // unreachable on the collective network, a rendezvous timeout) touched no example and is
  // charged nothing.
  DPFLEET_RETURN_IF_ERROR(ForEachPeer(peers, "joining the collective group", [&](size_t rank) {
    v1::JoinCollectiveRequest request;
    request.set_job_id(job_id);
    *request.mutable_ticket() = join_ticket;
    v1::JoinCollectiveResponse response;
    auto context = ContextWithDeadline(step_deadline);
    return peers[rank].stub->JoinCollective(context.get(), request, &response);
  }));

  // The steps, in lockstep: every worker runs step t before any runs t + 1.
  absl::Duration last_step_time = absl::ZeroDuration();
  for (int64_t step = progress.durable.checkpoint_step(); step < job.total_steps(); ++step) {
    const bool finish_lease_first =
        leaser.Covers(step, absl::Now(), step_deadline) &&
        last_step_time * leaser.LeasedFrom(step) <= options_.shutdown_grace;
    if (shutting_down_ && !finish_lease_first) {
      DPFLEET_RETURN_IF_ERROR(Suspend(job, attempt, step, peers[0], progress));
      return AttemptEnd::kSuspended;
    }
    if (jobs_->CancelRequested(job_id)) {
      return absl::CancelledError(absl::StrCat("cancelled after ", step, " steps"));
    }
    if (progress.steps_started >= ReservedSteps(progress.durable)) {
      // Steps lost to a failure run again and cost privacy again: reserve them before they run.
      DPFLEET_RETURN_IF_ERROR(ReserveRerun(job, attempt, step, progress));
    }
    DPFLEET_ASSIGN_OR_RETURN(const v1::AdmissionTicket ticket,
                             leaser.TicketFor(step, absl::Now(), step_deadline));
    // The step is leased durably before it starts, so a crash can never under-charge it.
    if (absl::Status leased =
            jobs_->LeaseSteps(job_id, progress.steps_started, ReservedSteps(progress.durable));
        !leased.ok()) {
      return absl::DataLossError(
          absl::StrCat("cannot record progress durably: ", leased.message()));
    }
    ++progress.steps_started;  // From here on the step may release noised gradients: it is charged.
    const absl::Time step_started = absl::Now();
    std::vector<v1::RunStepResponse> responses(peers.size());
    DPFLEET_RETURN_IF_ERROR(ForEachPeer(peers, absl::StrCat("step ", step), [&](size_t rank) {
      v1::RunStepRequest request;
      request.set_job_id(job_id);
      request.set_step(step);
      *request.mutable_ticket() = ticket;
      auto context = ContextWithDeadline(step_deadline);
      return peers[rank].stub->RunStep(context.get(), request, &responses[rank]);
    }));
    last_step_time = absl::Now() - step_started;
    DPFLEET_ASSIGN_OR_RETURN(const double epsilon, EpsilonAfter(job, progress.steps_started));
    if (absl::Status recorded =
            jobs_->RecordStep(job_id, StepRecordOf(job, step, responses, last_step_time, epsilon));
        !recorded.ok()) {
      return absl::DataLossError(
          absl::StrCat("cannot record the history durably: ", recorded.message()));
    }
    const int64_t every = job.spec().evaluate_every_steps();
    if (every > 0 && (step + 1) % every == 0 && step + 1 < job.total_steps()) {
      DPFLEET_ASSIGN_OR_RETURN(const TestScore score,
                               EvaluateOnPeers(peers, job_id, options_.control_deadline));
      if (absl::Status recorded =
              jobs_->RecordEvaluation(job_id, EvaluationRecordOf(score, step + 1, epsilon));
          !recorded.ok()) {
        return absl::DataLossError(
            absl::StrCat("cannot record the evaluation durably: ", recorded.message()));
      }
    }
    if ((step + 1) % options_.checkpoint_every_steps == 0 && step + 1 < job.total_steps()) {
      auto context = ContextWithDeadline(options_.control_deadline);
      v1::CheckpointRequest request;
      request.set_job_id(job_id);
      v1::CheckpointResponse response;
      const grpc::Status saved = peers[0].stub->Checkpoint(context.get(), request, &response);
      if (!saved.ok()) return Annotate(FromGrpcStatus(saved), "checkpoint");
      progress.durable.set_checkpoint(response.state());
      progress.durable.set_checkpoint_step(response.step());
      DPFLEET_RETURN_IF_ERROR(Save(job_id, progress));
    }
  }
  return AttemptEnd::kCompleted;
}

}  // namespace dpfleet::coordinator
