#ifndef DPFLEET_WORKER_WORKER_SERVICE_H_
#define DPFLEET_WORKER_WORKER_SERVICE_H_

// WorkerService: the coordinator's handle on one worker process. Every RPC is refused unless the
// caller's certificate carries the coordinator role (common/identity.h); then it translates the
// request into calls on ShardTrainer. Holds at most one job at a time.
//
// The coordinator is not trusted with the mechanism: AssignShard hands back a fresh session
// nonce, and JoinCollective and every RunStep must carry an admission ticket from the accountant
// that covers the assignment, this worker's nonce and the step (worker/admission.h). The group
// forms and the trainer is built only after the ticket checks out, so a refused job has touched
// no training example.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/admission_ticket.h"
#include "proto/dpfleet.grpc.pb.h"
#include "worker/idx_dataset.h"
#include "worker/trainer.h"

namespace dpfleet::worker {

// The largest request a worker accepts: AssignShard may carry a checkpoint of the model and its
// optimizer state (WideResNet-16-4 with momentum and a weight average: about 35 MB); every other
// request is a few hundred bytes.
constexpr int kMaxWorkerRequestBytes = 256 << 20;

struct WorkerOptions {
  // Folder whose sub-folders are datasets (IDX files, or train.dpf/test.dpf feature shards), named
  // by the sub-folder.
  std::string data_dir = "/usr/share/datasets";
  // This host's address on the collective network: rank 0 serves the job's rendezvous store on it,
  // and every rank binds its Gloo device to it. Every other worker must be able to reach it.
  std::string collective_host = "127.0.0.1";
  // "gloo" (CPU, TCP) or "nccl" (GPU; only in a --config=cuda build).
  std::string collective = "gloo";
  // GPU used by the NCCL collective.
  int gpu_device = 0;
};

// Returns OK when this build supports `options.collective`; kInvalidArgument otherwise.
absl::Status ValidateWorkerOptions(const WorkerOptions& options);

// Returns the datasets found under `data_dir`, loaded. Errors: kNotFound when data_dir is missing;
// kDataLoss from a corrupt dataset (naming it).
absl::StatusOr<std::map<std::string, std::shared_ptr<const Dataset>>> LoadDatasets(
    const std::string& data_dir);

// Returns the trainer options a job spec describes. Errors: kUnimplemented for an optimizer this
// worker lacks; kInvalidArgument for a missing optimizer.
absl::StatusOr<TrainerOptions> TrainerOptionsFromAssignment(const v1::ShardAssignment& assignment);

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  // `tickets` (the accountant's ticket key) must outlive the service.
  WorkerServiceImpl(const WorkerOptions& options,
                    std::map<std::string, std::shared_ptr<const Dataset>> datasets,
                    const TicketVerifier* tickets)
      : options_(options), datasets_(std::move(datasets)), tickets_(tickets) {}

  // What RegisterWorker advertises.
  std::vector<v1::DatasetInfo> DatasetInfos() const;

  grpc::Status AssignShard(grpc::ServerContext* context, const v1::AssignShardRequest* request,
                           v1::AssignShardResponse* response) override;
  grpc::Status JoinCollective(grpc::ServerContext* context,
                              const v1::JoinCollectiveRequest* request,
                              v1::JoinCollectiveResponse* response) override;
  grpc::Status RunStep(grpc::ServerContext* context, const v1::RunStepRequest* request,
                       v1::RunStepResponse* response) override;
  grpc::Status Evaluate(grpc::ServerContext* context, const v1::EvaluateRequest* request,
                        v1::EvaluateResponse* response) override;
  grpc::Status Checkpoint(grpc::ServerContext* context, const v1::CheckpointRequest* request,
                          v1::CheckpointResponse* response) override;
  grpc::Status ReleaseShard(grpc::ServerContext* context, const v1::ReleaseShardRequest* request,
                            v1::ReleaseShardResponse* response) override;

 private:
  struct ActiveJob {
    v1::ShardAssignment assignment;
    std::string session_nonce;  // Drawn for this assignment; names it in tickets.
    // The last ticket whose signature checked out, and its body: a lease covers several steps,
    // and its ticket is verified once, not on each of them.
    v1::AdmissionTicket verified_ticket;
    v1::TicketBody verified_body;
    c10::intrusive_ptr<c10d::Store> store;  // Rank 0's server store, made at assignment.
    std::unique_ptr<ShardTrainer> trainer;  // Made by JoinCollective.
    std::string broken;                     // Why the job can no longer step, if it cannot.
  };

  // Returns the active job `job_id`, or kFailedPrecondition/kNotFound.
  absl::StatusOr<ActiveJob*> FindJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FindJob, and also kFailedPrecondition (saying why) when a failure left the job unable to go on.
  absl::StatusOr<ActiveJob*> FindUsableJob(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns the trainer of the active job `job_id`, or also kFailedPrecondition before it joined
  // its collective group.
  absl::StatusOr<ShardTrainer*> FindTrainer(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Verifies `ticket` (unless it is the job's last verified one) and checks that it covers `job`
  // (and `step`, when set). Errors: kPermissionDenied saying why not.
  absl::Status CheckAdmitted(ActiveJob& job, const v1::AdmissionTicket& ticket,
                             std::optional<int64_t> step) const;
  // Joins the job's group and builds its trainer, unless it has one. Errors: kUnavailable when the
  // group cannot be formed; those of ShardTrainer::Create and Restore.
  absl::Status EnsureTrainer(ActiveJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerOptions options_;
  const std::map<std::string, std::shared_ptr<const Dataset>> datasets_;
  const TicketVerifier* const tickets_;

  absl::Mutex mu_;
  std::unique_ptr<ActiveJob> job_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_WORKER_SERVICE_H_
