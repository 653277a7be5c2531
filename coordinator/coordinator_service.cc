#include "coordinator/coordinator_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "accountant/mechanism.h"
#include "common/grpc_status.h"
#include "common/identity.h"
#include "common/random_id.h"
#include "common/status.h"
#include "coordinator/job_access.h"
#include "coordinator/job_history.h"
#include "coordinator/job_plan.h"

namespace dpfleet::coordinator {
namespace {

// A job id is also its reservation's idempotency key: two jobs must never share one (a collision
// would leave one of them uncharged), nor may anyone predict it. 128 bits from the CSPRNG.
absl::StatusOr<std::string> NewJobId() { return RandomId("job-", 16); }

}  // namespace

JobServiceImpl::JobServiceImpl(JobTable* jobs, WorkerPool* workers, AccountantClient* accountant,
                               const JobRunnerOptions& runner_options)
    : jobs_(jobs),
      workers_(workers),
      accountant_(accountant),
      runner_(jobs, workers, accountant, runner_options) {}

JobServiceImpl::~JobServiceImpl() {
  runner_.Shutdown();
  absl::MutexLock lock(&mu_);
  for (std::thread& thread : runner_threads_) thread.join();
}

absl::StatusOr<v1::Job> JobServiceImpl::Admit(const v1::JobSpec& spec, const std::string& owner) {
  DPFLEET_RETURN_IF_ERROR(ValidateJobSpec(spec));
  DPFLEET_ASSIGN_OR_RETURN(const int64_t dataset_size, workers_->DatasetSize(spec.dataset()));
  DPFLEET_RETURN_IF_ERROR(workers_->CheckPlacement(spec.dataset(), spec.num_workers()));
  DPFLEET_ASSIGN_OR_RETURN(const JobPlan plan, PlanJob(spec, dataset_size));

  v1::Job job;
  DPFLEET_ASSIGN_OR_RETURN(const std::string job_id, NewJobId());
  job.set_job_id(job_id);
  *job.mutable_spec() = spec;
  job.set_state(v1::QUEUED);
  job.set_sampling_rate(plan.sampling_rate);
  job.set_total_steps(plan.steps);
  job.set_dataset_size(dataset_size);
  job.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  job.set_owner(owner);
  job.mutable_progress()->set_total_steps(plan.steps);
  if (spec.privacy_case() == v1::JobSpec::kTargetEpsilon) {
    v1::CalibrateNoiseRequest request;
    request.set_sampling_rate(plan.sampling_rate);
    request.set_steps(plan.steps);
    request.set_target_epsilon(spec.target_epsilon());
    request.set_delta(spec.delta());
    DPFLEET_ASSIGN_OR_RETURN(const v1::CalibrateNoiseResponse noise,
                             accountant_->CalibrateNoise(request));
    if (spec.loss_noise_multiplier() > 0) {
      // The noised loss takes its share: the gradient gets less noise' worth of the target.
      DPFLEET_ASSIGN_OR_RETURN(const double gradient,
                               accountant::GradientNoiseMultiplierFor(
                                   noise.noise_multiplier(), spec.loss_noise_multiplier()));
      job.set_noise_multiplier(gradient);
    } else {
      job.set_noise_multiplier(noise.noise_multiplier());
    }
  } else {
    job.set_noise_multiplier(spec.noise_multiplier());
  }
  // What the workers check against their ticket is recomputed from the very same two numbers.
  job.set_accounted_noise_multiplier(
      accountant::CombinedNoiseMultiplier(job.noise_multiplier(), spec.loss_noise_multiplier()));
  v1::ReserveRequest reserve;
  reserve.set_dataset(spec.dataset());
  reserve.set_job_id(job.job_id());
  reserve.set_idempotency_key(job.job_id());
  reserve.mutable_mechanism()->set_sampling_rate(plan.sampling_rate);
  reserve.mutable_mechanism()->set_noise_multiplier(job.accounted_noise_multiplier());
  reserve.mutable_mechanism()->set_steps(plan.steps);
  reserve.set_clip_norm(spec.clip_norm());
  reserve.set_submitter(owner);  // The accountant checks its grant on the dataset.
  DPFLEET_ASSIGN_OR_RETURN(const v1::ReserveResponse reserved, accountant_->Reserve(reserve));
  job.set_reservation_id(reserved.reservation_id());
  v1::ComputeEpsilonRequest planned;
  *planned.mutable_mechanism() = reserve.mechanism();
  planned.set_delta(spec.delta());
  DPFLEET_ASSIGN_OR_RETURN(const v1::ComputeEpsilonResponse epsilon,
                           accountant_->ComputeEpsilon(planned));
  job.set_planned_epsilon(epsilon.epsilon());
  return job;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  const absl::StatusOr<Principal> caller =
      Authorize(*context, {Role::kAdmin, Role::kSubmitter}, "SubmitJob");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  const absl::StatusOr<v1::Job> job = Admit(request->spec(), caller->name);
  if (!job.ok()) return ToGrpcStatus(job.status());
  if (absl::Status stored = jobs_->Insert(*job); !stored.ok()) {
    v1::ReleaseRequest release;  // Nothing ran and nothing will: give the budget back.
    release.set_reservation_id(job->reservation_id());
    accountant_->Release(release).IgnoreError();
    return ToGrpcStatus(Annotate(stored, "cannot store the job"));
  }
  *response->mutable_job() = *job;
  absl::MutexLock lock(&mu_);
  runner_threads_.emplace_back([this, id = job->job_id()] { runner_.Run(id); });
  return grpc::Status::OK;
}

absl::Status JobServiceImpl::Recover() {
  DPFLEET_ASSIGN_OR_RETURN(const std::vector<StoredJob> stored, jobs_->Restore());
  for (const StoredJob& s : stored) {
    if (IsTerminal(s.job.state())) continue;
    absl::MutexLock lock(&mu_);
    if (s.job.state() == v1::QUEUED && s.step_bound == 0) {  // Never started: queue it again.
      runner_threads_.emplace_back([this, id = s.job.job_id()] { runner_.Run(id); });
    } else {
      runner_threads_.emplace_back([this, s] { runner_.Resume(s); });
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobServiceImpl::ReadableJob(const Principal& caller,
                                                    const std::string& job_id) const {
  absl::StatusOr<v1::Job> job = jobs_->Get(job_id);
  if (!job.ok()) return job.status();
  if (absl::Status readable = CheckCanRead(caller, *job); !readable.ok()) return readable;
  return AsSeenBy(caller, *std::move(job));
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                    v1::Job* response) {
  const absl::StatusOr<Principal> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  const absl::StatusOr<v1::Job> job = ReadableJob(*caller, request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *job;
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJobHistory(grpc::ServerContext* context,
                                           const v1::GetJobHistoryRequest* request,
                                           v1::JobHistory* response) {
  const absl::StatusOr<Principal> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  const absl::StatusOr<v1::Job> job = ReadableJob(*caller, request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  const absl::StatusOr<v1::JobHistory> history = jobs_->History(request->job_id());
  if (!history.ok()) return ToGrpcStatus(history.status());
  absl::StatusOr<v1::JobHistory> page = HistoryPage(*history, *request);
  if (!page.ok()) return ToGrpcStatus(page.status());
  *response = AsSeenBy(*caller, *job, *std::move(page));
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest*,
                                      v1::ListJobsResponse* response) {
  const absl::StatusOr<Principal> caller =
      Authorize(*context, {Role::kAdmin, Role::kReader, Role::kSubmitter}, "ListJobs");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  for (const v1::Job& job : jobs_->List()) {
    if (CheckCanRead(*caller, job).ok()) *response->add_jobs() = AsSeenBy(*caller, job);
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request, v1::Job* response) {
  const absl::StatusOr<Principal> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  const absl::StatusOr<v1::Job> job = jobs_->Get(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  if (absl::Status allowed = CheckCanCancel(*caller, *job); !allowed.ok()) {
    return ToGrpcStatus(allowed);
  }
  const absl::Status cancelled = jobs_->RequestCancel(request->job_id());
  if (!cancelled.ok()) return ToGrpcStatus(cancelled);
  const absl::StatusOr<v1::Job> now = ReadableJob(*caller, request->job_id());
  if (!now.ok()) return ToGrpcStatus(now.status());
  *response = *now;
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::JobEvent>* writer) {
  const absl::StatusOr<Principal> caller = CallerOf(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (const auto readable = ReadableJob(*caller, request->job_id()); !readable.ok()) {
    return ToGrpcStatus(readable.status());
  }
  const absl::StatusOr<CallLimiter::Slot> slot = watch_streams_.Acquire(caller->name);
  if (!slot.ok()) return ToGrpcStatus(slot.status());
  int64_t seen_version = 0;
  while (!context->IsCancelled()) {
    const auto changed = jobs_->WaitForChange(request->job_id(), seen_version, absl::Seconds(1));
    if (!changed.ok()) return ToGrpcStatus(changed.status());
    const auto& [job, version] = *changed;
    if (version == seen_version) continue;
    seen_version = version;
    v1::JobEvent event;
    *event.mutable_job() = AsSeenBy(*caller, job);
    if (!writer->Write(event)) return grpc::Status::CANCELLED;
    if (IsTerminal(job.state())) return grpc::Status::OK;
  }
  return grpc::Status::CANCELLED;
}

grpc::Status WorkerRegistryImpl::RegisterWorker(grpc::ServerContext* context,
                                                const v1::RegisterWorkerRequest* request,
                                                v1::RegisterWorkerResponse* response) {
  const absl::StatusOr<Principal> caller = Authorize(*context, {Role::kWorker}, "RegisterWorker");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (request->address().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("address is required"));
  }
  std::map<std::string, HeldRows> datasets;
  for (const v1::DatasetInfo& info : request->datasets()) {
    const HeldRows held{info.train_examples(), info.held_begin(), info.held_end()};
    if (held.begin < 0 || held.begin >= held.end || held.end > held.total) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("dataset '", info.name(), "': held rows [", held.begin, ", ", held.end,
                       ") do not lie in its ", held.total, " rows")));
    }
    datasets[info.name()] = held;
  }
  const absl::StatusOr<std::string> worker_id =
      workers_->Register(caller->name, request->address(), datasets);
  if (!worker_id.ok()) return ToGrpcStatus(worker_id.status());
  response->set_worker_id(*worker_id);
  response->set_heartbeat_interval_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(heartbeat_interval_)));
  return grpc::Status::OK;
}

grpc::Status WorkerRegistryImpl::Heartbeat(grpc::ServerContext* context,
                                           const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse*) {
  const absl::StatusOr<Principal> caller = Authorize(*context, {Role::kWorker}, "Heartbeat");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return ToGrpcStatus(workers_->Heartbeat(caller->name, request->worker_id()));
}

grpc::Status WorkerRegistryImpl::ListWorkers(grpc::ServerContext* context,
                                             const v1::ListWorkersRequest*,
                                             v1::ListWorkersResponse* response) {
  const absl::StatusOr<Principal> caller =
      Authorize(*context, {Role::kAdmin, Role::kReader}, "ListWorkers");
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  for (const auto& [record, alive] : workers_->List()) {
    v1::WorkerStatus* status = response->add_workers();
    status->set_worker_id(record.worker_id);
    status->set_address(record.address);
    status->set_alive(alive);
    status->set_job_id(record.job_id);
    for (const auto& [name, held] : record.datasets) {
      v1::DatasetInfo* info = status->add_datasets();
      info->set_name(name);
      info->set_train_examples(held.total);
      info->set_held_begin(held.begin);
      info->set_held_end(held.end);
    }
  }
  return grpc::Status::OK;
}

}  // namespace dpfleet::coordinator
