#ifndef DPFLEET_COORDINATOR_COORDINATOR_SERVICE_H_
#define DPFLEET_COORDINATOR_COORDINATOR_SERVICE_H_

// The coordinator's two gRPC faces: JobService for clients and WorkerRegistry for workers. They
// check who is calling (common/identity.h, coordinator/job_access.h) and translate protos into
// calls on the job table, the worker pool, the planner and the accountant.
//   SubmitJob: admin or submitter, who becomes the job's owner;
//   GetJob, WatchJob, GetJobHistory: the owner, admins and readers; ListJobs: admins and readers
//   see every job, submitters their own; CancelJob: the owner and admins; RegisterWorker,
//   Heartbeat: workers, each for itself; ListWorkers: admins and readers.
// Refusals are UNAUTHENTICATED or PERMISSION_DENIED and change nothing.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/call_limiter.h"
#include "coordinator/accountant_client.h"
#include "coordinator/job_runner.h"
#include "coordinator/job_table.h"
#include "coordinator/worker_pool.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::coordinator {

// The largest request the coordinator accepts: a JobSpec, or a worker's list of datasets.
constexpr int kMaxCoordinatorRequestBytes = 1 << 20;

// WatchJob streams each hold a server thread for as long as the job runs: at most this many per
// caller, and in all; one more is refused with RESOURCE_EXHAUSTED.
constexpr int kMaxWatchStreamsPerCaller = 8;
constexpr int kMaxWatchStreams = 128;

class JobServiceImpl final : public v1::JobService::Service {
 public:
  // All pointers must outlive the service.
  JobServiceImpl(JobTable* jobs, WorkerPool* workers, AccountantClient* accountant,
                 const JobRunnerOptions& runner_options);
  // Shuts the runners down (JobRunner::Shutdown: running jobs suspend at a step boundary, queued
  // ones stay queued) and waits for them.
  ~JobServiceImpl() override;

  // After a restart: reloads the stored jobs, queues again those that never started, and resumes
  // those that were running from their last saved checkpoint (JobRunner::Resume). Call before
  // serving.
  // Errors: those of the job store.
  absl::Status Recover();

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status GetJobHistory(grpc::ServerContext* context, const v1::GetJobHistoryRequest* request,
                             v1::JobHistory* response) override;

 private:
  // Plans the job, calibrates its noise and reserves its budget; returns the queued job, owned by
  // `owner`.
  absl::StatusOr<v1::Job> Admit(const v1::JobSpec& spec, const std::string& owner);

  // The job `job_id` if `caller` may read it. Errors: kNotFound; kPermissionDenied.
  absl::StatusOr<v1::Job> ReadableJob(const Principal& caller, const std::string& job_id) const;

  JobTable* const jobs_;
  WorkerPool* const workers_;
  AccountantClient* const accountant_;
  JobRunner runner_;
  CallLimiter watch_streams_{"WatchJob streams", kMaxWatchStreamsPerCaller, kMaxWatchStreams};

  absl::Mutex mu_;
  std::vector<std::thread> runner_threads_ ABSL_GUARDED_BY(mu_);
};

class WorkerRegistryImpl final : public v1::WorkerRegistry::Service {
 public:
  WorkerRegistryImpl(WorkerPool* workers, absl::Duration heartbeat_interval)
      : workers_(workers), heartbeat_interval_(heartbeat_interval) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;

 private:
  WorkerPool* const workers_;
  const absl::Duration heartbeat_interval_;
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_COORDINATOR_SERVICE_H_
