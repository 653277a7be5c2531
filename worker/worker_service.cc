#include "worker/worker_service.h"

#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/identity.h"
#include "common/status.h"
#include "worker/admission.h"
#include "worker/caching_allocator.h"
#include "worker/feature_dataset.h"
#include "worker/gloo_reducer.h"
#include "worker/secure_random.h"
#ifdef DPFLEET_WITH_CUDA
#include "worker/nccl_reducer.h"
#endif

namespace dpfleet::worker {
namespace {

constexpr size_t kSecretBytes = 16;

std::string FreshNonce() {
  std::string nonce(kSecretBytes, '\0');
  FillSecureRandomBytes(nonce.data(), nonce.size());
  return nonce;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::shared_ptr<const Dataset>>> LoadDatasets(
    const std::string& data_dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(data_dir, error)) {
    return absl::NotFoundError(absl::StrCat("data directory ", data_dir, " does not exist"));
  }
  std::map<std::string, std::shared_ptr<const Dataset>> datasets;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir)) {
    if (!entry.is_directory()) continue;
    const std::string folder = entry.path().string();
    std::shared_ptr<const Dataset> dataset;
    if (LooksLikeFeatureDataset(folder)) {
      DPFLEET_ASSIGN_OR_RETURN(dataset, LoadFeatureDataset(folder));
    } else if (LooksLikeIdxDataset(folder)) {
      DPFLEET_ASSIGN_OR_RETURN(dataset, LoadIdxDataset(folder));
    } else {
      continue;
    }
    datasets[dataset->name] = std::move(dataset);
  }
  return datasets;
}

absl::Status ValidateWorkerOptions(const WorkerOptions& options) {
  if (options.collective == "gloo") return absl::OkStatus();
#ifdef DPFLEET_WITH_CUDA
  if (options.collective == "nccl") return absl::OkStatus();
#else
  if (options.collective == "nccl") {
    return absl::InvalidArgumentError(
        "collective 'nccl' needs a build with --config=cuda; this worker was built without CUDA");
  }
#endif
  return absl::InvalidArgumentError(
      absl::StrCat("collective must be 'gloo' or 'nccl', got '", options.collective, "'"));
}

absl::StatusOr<TrainerOptions> TrainerOptionsFromAssignment(const v1::ShardAssignment& assignment) {
  const v1::JobSpec& spec = assignment.spec();
  TrainerOptions options;
  options.model = spec.model();
  options.seed = spec.seed();
  options.sampling_rate = assignment.sampling_rate();
  options.noise_multiplier = assignment.noise_multiplier();
  options.loss_noise_multiplier = spec.loss_noise_multiplier();
  options.clipping.loss_clip = spec.loss_noise_multiplier() > 0 ? spec.loss_clip() : 0;
  options.clipping.clip_norm = spec.clip_norm();
  options.clipping.mode = spec.clipping_mode() == v1::CLIPPING_PER_LAYER ? ClippingMode::kPerLayer
                                                                         : ClippingMode::kFlat;
  options.clipping.automatic = spec.automatic_clipping();
  options.clipping.low_memory = spec.low_memory_clipping();
  options.clipping.loss = spec.loss() == v1::LOSS_SIGMOID_CROSS_ENTROPY
                              ? Loss::kSigmoidCrossEntropy
                              : Loss::kSoftmaxCrossEntropy;
  options.zero_init_head = spec.zero_init_head();
  if (spec.micro_batch_size() > 0) options.micro_batch_size = spec.micro_batch_size();
  options.augmentation = {.views = std::max<int64_t>(1, spec.augmentation().views()),
                          .crop_padding = spec.augmentation().crop_padding(),
                          .horizontal_flip = spec.augmentation().horizontal_flip()};
  const v1::OptimizerSpec& optimizer = spec.optimizer();
  switch (optimizer.type()) {
    case v1::DP_SGD:
      options.optimizer.kind = OptimizerKind::kSgd;
      break;
    case v1::DP_ADAM:
      options.optimizer.kind = OptimizerKind::kAdam;
      break;
    case v1::DP_LAMB:
      options.optimizer.kind = OptimizerKind::kLamb;
      break;
    default:
      return absl::InvalidArgumentError("optimizer.type is missing");
  }
  options.optimizer.learning_rate = optimizer.learning_rate();
  options.optimizer.momentum = optimizer.momentum();
  options.optimizer.weight_decay = optimizer.weight_decay();
  if (optimizer.beta1() > 0) options.optimizer.beta1 = optimizer.beta1();
  if (optimizer.beta2() > 0) options.optimizer.beta2 = optimizer.beta2();
  if (optimizer.epsilon() > 0) options.optimizer.epsilon = optimizer.epsilon();
  options.optimizer.schedule = optimizer.schedule() == v1::SCHEDULE_COSINE
                                   ? LearningRateSchedule::kCosine
                                   : LearningRateSchedule::kConstant;
  options.optimizer.warmup_steps = optimizer.warmup_steps();
  options.optimizer.total_steps = assignment.total_steps();
  options.ema_decay = optimizer.ema_decay();
  options.shard_begin = assignment.shard_begin();
  options.shard_end = assignment.shard_end();
  return options;
}

std::vector<v1::DatasetInfo> WorkerServiceImpl::DatasetInfos() const {
  std::vector<v1::DatasetInfo> infos;
  for (const auto& [name, dataset] : datasets_) {
    v1::DatasetInfo info;
    info.set_name(name);
    info.set_train_examples(dataset->train_examples);
    info.set_test_examples(dataset->test_inputs.size(0));
    info.set_held_begin(dataset->held_begin());
    info.set_held_end(dataset->held_end());
    infos.push_back(info);
  }
  return infos;
}

absl::StatusOr<WorkerServiceImpl::ActiveJob*> WorkerServiceImpl::FindJob(
    const std::string& job_id) {
  if (job_ == nullptr)
    return absl::NotFoundError(absl::StrCat("no job is assigned; asked for ", job_id));
  if (job_->assignment.job_id() != job_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("this worker runs job ", job_->assignment.job_id(), ", not ", job_id));
  }
  return job_.get();
}

absl::StatusOr<WorkerServiceImpl::ActiveJob*> WorkerServiceImpl::FindUsableJob(
    const std::string& job_id) {
  DPFLEET_ASSIGN_OR_RETURN(ActiveJob* const job, FindJob(job_id));
  if (!job->broken.empty()) {
    return absl::FailedPreconditionError("job cannot continue: " + job->broken);
  }
  return job;
}

absl::Status WorkerServiceImpl::CheckAdmitted(ActiveJob& job, const v1::AdmissionTicket& ticket,
                                              std::optional<int64_t> step) const {
  const bool verified_before = !job.verified_ticket.body().empty() &&
                               ticket.body() == job.verified_ticket.body() &&
                               ticket.signature() == job.verified_ticket.signature();
  if (!verified_before) {
    DPFLEET_ASSIGN_OR_RETURN(job.verified_body, tickets_->Verify(ticket));
    job.verified_ticket = ticket;
  }
  return CheckTicketCovers(job.verified_body, job.assignment, job.session_nonce, step, absl::Now());
}

absl::StatusOr<ShardTrainer*> WorkerServiceImpl::FindTrainer(const std::string& job_id) {
  DPFLEET_ASSIGN_OR_RETURN(ActiveJob* const job, FindJob(job_id));
  if (job->trainer == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " has not joined its collective group"));
  }
  return job->trainer.get();
}

grpc::Status WorkerServiceImpl::AssignShard(grpc::ServerContext* context,
                                            const v1::AssignShardRequest* request,
                                            v1::AssignShardResponse* response) {
  if (const auto caller = Authorize(*context, {Role::kCoordinator}, "AssignShard"); !caller.ok()) {
    return ToGrpcStatus(caller.status());
  }
  const v1::ShardAssignment& assignment = request->assignment();
  absl::MutexLock lock(&mu_);
  if (job_ != nullptr && job_->assignment.job_id() == assignment.job_id() &&
      job_->assignment.attempt() == assignment.attempt()) {  // A retried call.
    response->set_store_port(job_->assignment.store_port());
    response->set_store_host(job_->assignment.store_host());
    response->set_session_nonce(job_->session_nonce);
    return grpc::Status::OK;
  }
  if (assignment.rendezvous_secret().size() != kSecretBytes) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("rendezvous_secret must be ", kSecretBytes, " random bytes, got ",
                     assignment.rendezvous_secret().size())));
  }
  // The coordinator only assigns workers it considers idle: a job still held here ended without
  // a ReleaseShard reaching this worker (its coordinator failed or gave up), so it is dropped.
  if (datasets_.count(assignment.spec().dataset()) == 0) {
    return ToGrpcStatus(absl::NotFoundError(
        absl::StrCat("this worker has no dataset '", assignment.spec().dataset(), "'")));
  }
  const int64_t examples = datasets_.at(assignment.spec().dataset())->train_examples;
  if (assignment.dataset_size() != examples) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("the job plans for ", assignment.dataset_size(), " examples of dataset '",
                     assignment.spec().dataset(), "', this worker's copy has ", examples)));
  }
  if (assignment.world_size() < 1 || assignment.rank() < 0 ||
      assignment.rank() >= assignment.world_size()) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "rank ", assignment.rank(), " is outside a world of size ", assignment.world_size())));
  }
  const absl::StatusOr<TrainerOptions> options = TrainerOptionsFromAssignment(assignment);
  if (!options.ok()) return ToGrpcStatus(options.status());
  auto job = std::make_unique<ActiveJob>();
  job->assignment = assignment;
  job->session_nonce = FreshNonce();
  if (assignment.rank() == 0) {
    int port = 0;
    const auto store =
        ServeRendezvousStore({.store_host = options_.collective_host,
                              .store_port = assignment.store_port(),
                              .world_size = assignment.world_size(),
                              .timeout = std::chrono::seconds(assignment.collective_timeout_s()),
                              .key_prefix = absl::BytesToHexString(assignment.rendezvous_secret())},
                             &port);
    if (!store.ok()) return ToGrpcStatus(store.status());
    job->store = *store;
    job->assignment.set_store_host(options_.collective_host);
    job->assignment.set_store_port(port);
  }
  response->set_store_port(job->assignment.store_port());
  response->set_store_host(job->assignment.store_host());
  response->set_session_nonce(job->session_nonce);
  job_ = std::move(job);
  return grpc::Status::OK;
}

absl::Status WorkerServiceImpl::EnsureTrainer(ActiveJob& job) {
  if (job.trainer != nullptr) return absl::OkStatus();
  const v1::ShardAssignment& assignment = job.assignment;
  const RendezvousOptions rendezvous{
      .store_host = assignment.store_host(),
      .store_port = assignment.store_port(),
      .local_host = options_.collective_host,
      .rank = assignment.rank(),
      .world_size = assignment.world_size(),
      .timeout = std::chrono::seconds(assignment.collective_timeout_s()),
      .key_prefix = absl::BytesToHexString(assignment.rendezvous_secret())};
  if (job.store.get() == nullptr) {
    DPFLEET_ASSIGN_OR_RETURN(job.store, ConnectRendezvousStore(rendezvous));
  }
  std::unique_ptr<Reducer> reducer;
#ifdef DPFLEET_WITH_CUDA
  if (options_.collective == "nccl") {
    DPFLEET_ASSIGN_OR_RETURN(reducer,
                             CreateNcclReducer(rendezvous, job.store, options_.gpu_device));
  }
#endif
  if (reducer == nullptr) {
    DPFLEET_ASSIGN_OR_RETURN(reducer, CreateGlooReducer(rendezvous, job.store));
  }
  DPFLEET_ASSIGN_OR_RETURN(const TrainerOptions options, TrainerOptionsFromAssignment(assignment));
  DPFLEET_ASSIGN_OR_RETURN(
      std::unique_ptr<ShardTrainer> trainer,
      ShardTrainer::Create(options, datasets_.at(assignment.spec().dataset()), std::move(reducer)));
  if (!assignment.checkpoint().empty())
    DPFLEET_RETURN_IF_ERROR(trainer->Restore(assignment.checkpoint()));
  job.trainer = std::move(trainer);
  return absl::OkStatus();
}

grpc::Status WorkerServiceImpl::JoinCollective(grpc::ServerContext* context,
                                               const v1::JoinCollectiveRequest* request,
                                               v1::JoinCollectiveResponse*) {
  if (const auto caller = Authorize(*context, {Role::kCoordinator}, "JoinCollective");
      !caller.ok()) {
    return ToGrpcStatus(caller.status());
  }
  absl::MutexLock lock(&mu_);
  const absl::StatusOr<ActiveJob*> job = FindUsableJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  ActiveJob& active = **job;
  if (absl::Status admitted = CheckAdmitted(active, request->ticket(), std::nullopt);
      !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  // Tensor code reports some failures by exception; none may escape into gRPC.
  absl::Status joined;
  try {
    joined = EnsureTrainer(active);
  } catch (const std::exception& e) {
    joined = absl::InternalError(absl::StrCat("preparing the trainer failed: ", e.what()));
  }
  if (!joined.ok()) active.broken = std::string(joined.message());
  return ToGrpcStatus(joined);
}

grpc::Status WorkerServiceImpl::RunStep(grpc::ServerContext* context,
                                        const v1::RunStepRequest* request,
                                        v1::RunStepResponse* response) {
  if (const auto caller = Authorize(*context, {Role::kCoordinator}, "RunStep"); !caller.ok()) {
    return ToGrpcStatus(caller.status());
  }
  absl::MutexLock lock(&mu_);
  const absl::StatusOr<ActiveJob*> job = FindUsableJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  ActiveJob& active = **job;
  const absl::StatusOr<ShardTrainer*> trainer = FindTrainer(request->job_id());
  if (!trainer.ok()) return ToGrpcStatus(trainer.status());
  if (request->step() != (*trainer)->steps_done()) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "asked for step ", request->step(), " but the next step is ", (*trainer)->steps_done())));
  }
  if (absl::Status admitted = CheckAdmitted(active, request->ticket(), request->step());
      !admitted.ok()) {
    return ToGrpcStatus(admitted);
  }
  // Tensor code reports some failures by exception; none may escape into gRPC.
  const absl::StatusOr<ShardTrainer::StepResult> result =
      [&]() -> absl::StatusOr<ShardTrainer::StepResult> {
    try {
      return (*trainer)->RunStep();
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("step ", request->step(), " failed: ", e.what()));
    }
  }();
  if (!result.ok()) {
    active.broken = std::string(result.status().message());
    return ToGrpcStatus(result.status());
  }
  response->set_step(request->step());
  if (active.assignment.spec().loss_noise_multiplier() > 0) {
    response->set_noised_loss_sum(result->noised_loss_sum);  // Instead of the raw diagnostics.
  } else {
    response->set_loss_sum(result->loss_sum);
    response->set_local_batch_size(result->batch_size);
    response->set_non_finite_examples(result->non_finite_examples);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Evaluate(grpc::ServerContext* context,
                                         const v1::EvaluateRequest* request,
                                         v1::EvaluateResponse* response) {
  if (const auto caller = Authorize(*context, {Role::kCoordinator}, "Evaluate"); !caller.ok()) {
    return ToGrpcStatus(caller.status());
  }
  absl::MutexLock lock(&mu_);
  const absl::StatusOr<ShardTrainer*> trainer = FindTrainer(request->job_id());
  if (!trainer.ok()) return ToGrpcStatus(trainer.status());
  const ShardTrainer::Evaluation evaluation = (*trainer)->EvaluateTestShard();
  response->set_correct(evaluation.correct);
  response->set_examples(evaluation.examples);
  response->set_parameter_fingerprint((*trainer)->ParameterFingerprint());
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Checkpoint(grpc::ServerContext* context,
                                           const v1::CheckpointRequest* request,
                                           v1::CheckpointResponse* response) {
  if (const auto caller = Authorize(*context, {Role::kCoordinator}, "Checkpoint"); !caller.ok()) {
    return ToGrpcStatus(caller.status());
  }
  absl::MutexLock lock(&mu_);
  const absl::StatusOr<ShardTrainer*> trainer = FindTrainer(request->job_id());
  if (!trainer.ok()) return ToGrpcStatus(trainer.status());
  const absl::StatusOr<std::string> state = (*trainer)->Checkpoint();
  if (!state.ok()) return ToGrpcStatus(state.status());
  response->set_state(*state);
  response->set_step((*trainer)->steps_done());
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReleaseShard(grpc::ServerContext* context,
                                             const v1::ReleaseShardRequest* request,
                                             v1::ReleaseShardResponse*) {
  if (const auto caller = Authorize(*context, {Role::kCoordinator}, "ReleaseShard"); !caller.ok()) {
    return ToGrpcStatus(caller.status());
  }
  absl::MutexLock lock(&mu_);
  if (job_ != nullptr && job_->assignment.job_id() == request->job_id()) {
    job_.reset();
    ReleaseCachedCpuBlocks();  // An idle worker holds no memory for the job that ended.
  }
  return grpc::Status::OK;
}

}  // namespace dpfleet::worker
