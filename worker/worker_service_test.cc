#include "worker/worker_service.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/serve.h"
#include "common/test_certificates.h"
#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

// A linearly separable toy problem: the label is the index of the largest of the first 4 pixels.
std::shared_ptr<const Dataset> ToyDataset() {
  auto dataset = std::make_shared<Dataset>();
  at::manual_seed(11);
  dataset->name = "toy";
  const at::Tensor inputs = at::randn({200, 1, 2, 2});
  dataset->SetTrainingSplit(inputs, inputs.flatten(1).argmax(1));
  dataset->test_inputs = at::randn({20, 1, 2, 2});
  dataset->test_labels = dataset->test_inputs.flatten(1).argmax(1);
  dataset->num_classes = 4;
  return dataset;
}

v1::ShardAssignment Assignment() {
  v1::ShardAssignment assignment;
  assignment.set_job_id("job-1");
  assignment.mutable_spec()->set_dataset("toy");
  assignment.mutable_spec()->set_model("linear");
  assignment.mutable_spec()->set_clip_norm(2.0);
  assignment.mutable_spec()->set_micro_batch_size(32);
  assignment.mutable_spec()->mutable_optimizer()->set_type(v1::DP_ADAM);
  assignment.mutable_spec()->mutable_optimizer()->set_learning_rate(0.01);
  assignment.set_sampling_rate(0.1);
  assignment.set_noise_multiplier(1.3);
  assignment.set_world_size(2);
  assignment.set_rank(1);
  assignment.set_rendezvous_secret(std::string(16, 's'));
  return assignment;
}

TEST(TrainerOptionsFromAssignment, CopiesTheJobAndDefaultsAdam) {
  const TrainerOptions options = *TrainerOptionsFromAssignment(Assignment());
  EXPECT_EQ(options.model, "linear");
  EXPECT_EQ(options.clipping.clip_norm, 2.0);
  EXPECT_EQ(options.clipping.mode, ClippingMode::kFlat);
  EXPECT_EQ(options.noise_multiplier, 1.3);
  EXPECT_EQ(options.sampling_rate, 0.1);
  EXPECT_EQ(options.micro_batch_size, 32);
  EXPECT_EQ(options.optimizer.kind, OptimizerKind::kAdam);
  EXPECT_EQ(options.optimizer.beta2, 0.999);
  EXPECT_FALSE(options.clipping.low_memory);
}

TEST(TrainerOptionsFromAssignment, CopiesTheClippingChoicesAndTheShard) {
  v1::ShardAssignment assignment = Assignment();
  assignment.mutable_spec()->set_low_memory_clipping(true);
  assignment.mutable_spec()->set_automatic_clipping(true);
  assignment.set_shard_begin(40);
  assignment.set_shard_end(90);
  const TrainerOptions options = *TrainerOptionsFromAssignment(assignment);
  EXPECT_TRUE(options.clipping.low_memory);
  EXPECT_TRUE(options.clipping.automatic);
  EXPECT_EQ(options.shard_begin, 40);
  EXPECT_EQ(options.shard_end, 90);
}

TEST(TrainerOptionsFromAssignment, MapsLambAndItsSchedule) {
  v1::ShardAssignment assignment = Assignment();
  assignment.set_total_steps(50);
  v1::OptimizerSpec* optimizer = assignment.mutable_spec()->mutable_optimizer();
  optimizer->set_type(v1::DP_LAMB);
  optimizer->set_schedule(v1::SCHEDULE_COSINE);
  optimizer->set_warmup_steps(5);
  optimizer->set_ema_decay(0.99);
  const TrainerOptions options = *TrainerOptionsFromAssignment(assignment);
  EXPECT_EQ(options.optimizer.kind, OptimizerKind::kLamb);
  EXPECT_EQ(options.optimizer.schedule, LearningRateSchedule::kCosine);
  EXPECT_EQ(options.optimizer.warmup_steps, 5);
  EXPECT_EQ(options.optimizer.total_steps, 50);
  EXPECT_EQ(options.ema_decay, 0.99);
}

TEST(TrainerOptionsFromAssignment, RefusesAMissingOptimizer) {
  v1::ShardAssignment assignment = Assignment();
  assignment.mutable_spec()->clear_optimizer();
  EXPECT_EQ(TrainerOptionsFromAssignment(assignment).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The service behind a real server with mutual TLS, as a worker's certificate.
class WorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = *StartServer(
        {.listen_address = "127.0.0.1:0",
         .credentials = MutualTlsServerCredentials(TestCertificate("worker-0", Role::kWorker))},
        {&service_});
  }
  void TearDown() override { server_.server->Shutdown(); }

  std::unique_ptr<v1::WorkerService::Stub> As(const std::string& name, Role role) {
    return v1::WorkerService::NewStub(MutualTlsChannel(absl::StrCat("127.0.0.1:", server_.port),
                                                       TestCertificate(name, role), Role::kWorker));
  }
  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  // A one-rank assignment of the toy dataset this worker holds.
  static v1::ShardAssignment ToyAssignment(int attempt = 0) {
    v1::ShardAssignment assignment = Assignment();
    assignment.set_world_size(1);
    assignment.set_rank(0);
    assignment.set_dataset_size(200);
    assignment.set_shard_begin(0);
    assignment.set_shard_end(200);
    assignment.set_total_steps(10);
    assignment.set_collective_timeout_s(10);
    assignment.set_attempt(attempt);
    return assignment;
  }

  // A ticket from the accountant's key covering `assignment` on the group whose one rank drew
  // `nonce`, for steps [first, end).
  static v1::AdmissionTicket TicketFor(const v1::ShardAssignment& assignment,
                                       const std::string& nonce, int64_t first, int64_t end,
                                       const std::string& ca = "cluster-ca") {
    v1::TicketBody body;
    body.set_job_id(assignment.job_id());
    body.set_dataset(assignment.spec().dataset());
    body.set_sampling_rate(assignment.sampling_rate());
    body.set_noise_multiplier(assignment.noise_multiplier());
    body.set_clip_norm(assignment.spec().clip_norm());
    body.add_rank_nonces(nonce);
    v1::ShardRange* shard = body.add_shards();
    shard->set_begin(assignment.shard_begin());
    shard->set_end(assignment.shard_end());
    body.set_first_step(first);
    body.set_end_step(end);
    body.set_expires_unix_ms(absl::ToUnixMillis(absl::Now() + absl::Minutes(1)));
    return *TestTicketSigner(ca)->Sign(body);
  }

  // Assigns `assignment`; returns this worker's session nonce for it.
  std::string Assign(v1::WorkerService::Stub& coordinator, const v1::ShardAssignment& assignment) {
    v1::AssignShardRequest assign;
    *assign.mutable_assignment() = assignment;
    v1::AssignShardResponse assigned;
    const grpc::Status status = coordinator.AssignShard(Context().get(), assign, &assigned);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(assigned.session_nonce().size(), 16u);
    return assigned.session_nonce();
  }

  static grpc::Status Join(v1::WorkerService::Stub& coordinator,
                           const v1::AdmissionTicket& ticket) {
    v1::JoinCollectiveRequest join;
    join.set_job_id("job-1");
    *join.mutable_ticket() = ticket;
    v1::JoinCollectiveResponse joined;
    return coordinator.JoinCollective(Context().get(), join, &joined);
  }

  static grpc::Status Step(v1::WorkerService::Stub& coordinator, int64_t step,
                           const v1::AdmissionTicket& ticket) {
    v1::RunStepRequest request;
    request.set_job_id("job-1");
    request.set_step(step);
    *request.mutable_ticket() = ticket;
    v1::RunStepResponse response;
    return coordinator.RunStep(Context().get(), request, &response);
  }

  std::unique_ptr<TicketVerifier> tickets_ = TestTicketVerifier();
  WorkerServiceImpl service_{{}, {{"toy", ToyDataset()}}, tickets_.get()};
  RunningServer server_;
};

TEST_F(WorkerServiceTest, RunsOnlyTheStepsItsTicketCovers) {
  const auto coordinator = As("coordinator", Role::kCoordinator);
  const v1::ShardAssignment assignment = ToyAssignment();
  const std::string nonce = Assign(*coordinator, assignment);
  EXPECT_EQ(Assign(*coordinator, assignment), nonce);  // A retried assignment keeps its nonce.
  const v1::AdmissionTicket first_steps = TicketFor(assignment, nonce, 0, 2);
  ASSERT_TRUE(Join(*coordinator, first_steps).ok());
  EXPECT_TRUE(Step(*coordinator, 0, first_steps).ok());
  EXPECT_TRUE(Step(*coordinator, 1, first_steps).ok());
  const grpc::Status unleased = Step(*coordinator, 2, first_steps);
  EXPECT_EQ(unleased.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(unleased.error_message().find("step 2 is outside the leased steps [0, 2)"),
            std::string::npos)
      << unleased.error_message();
  EXPECT_EQ(Step(*coordinator, 2, v1::AdmissionTicket()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Step(*coordinator, 2, TicketFor(assignment, nonce, 0, 3)).ok());
}

TEST_F(WorkerServiceTest, RefusesAnAssignmentItsTicketDoesNotCover) {
  const auto coordinator = As("coordinator", Role::kCoordinator);
  const v1::ShardAssignment admitted = ToyAssignment(0);
  const std::string nonce = Assign(*coordinator, admitted);
  // A ticket the accountant's key did not sign, or signed for another mechanism.
  EXPECT_EQ(Join(*coordinator, TicketFor(admitted, nonce, 0, 5, "other-ca")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  for (auto change : std::vector<std::function<void(v1::ShardAssignment&)>>{
           [](v1::ShardAssignment& a) {
             a.set_noise_multiplier(2.0);
           },  // The ticket asks for more.
           [](v1::ShardAssignment& a) { a.set_sampling_rate(0.5); },
           [](v1::ShardAssignment& a) { a.mutable_spec()->set_clip_norm(20); },
           [](v1::ShardAssignment& a) { a.set_shard_end(100); }}) {
    v1::ShardAssignment other = admitted;
    change(other);
    const grpc::Status status = Join(*coordinator, TicketFor(other, nonce, 0, 5));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(status.error_message().find("admission ticket does not cover"), std::string::npos)
        << status.error_message();
  }
  // Nothing was built: no step can run.
  v1::RunStepRequest step;
  step.set_job_id("job-1");
  v1::RunStepResponse stepped;
  EXPECT_EQ(coordinator->RunStep(Context().get(), step, &stepped).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // A new assignment draws a new nonce: the old group's ticket cannot be replayed on it.
  const v1::ShardAssignment again = ToyAssignment(1);
  const std::string new_nonce = Assign(*coordinator, again);
  EXPECT_NE(new_nonce, nonce);
  const grpc::Status replayed = Join(*coordinator, TicketFor(again, nonce, 0, 5));
  EXPECT_EQ(replayed.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Join(*coordinator, TicketFor(again, new_nonce, 0, 5)).ok());

  // An assignment without its rendezvous secret is refused.
  v1::ShardAssignment no_secret = ToyAssignment(2);
  no_secret.clear_rendezvous_secret();
  v1::AssignShardRequest assign;
  *assign.mutable_assignment() = no_secret;
  v1::AssignShardResponse assigned;
  EXPECT_EQ(coordinator->AssignShard(Context().get(), assign, &assigned).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(WorkerServiceTest, RefusesUnknownDatasetAndStepsOfOtherJobs) {
  const auto coordinator = As("coordinator", Role::kCoordinator);
  v1::AssignShardRequest assign;
  *assign.mutable_assignment() = Assignment();
  v1::AssignShardResponse assigned;
  assign.mutable_assignment()->mutable_spec()->set_dataset("imagenet");
  const grpc::Status status = coordinator->AssignShard(Context().get(), assign, &assigned);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("imagenet"), std::string::npos);

  v1::RunStepRequest step;
  step.set_job_id("job-1");
  v1::RunStepResponse stepped;
  EXPECT_EQ(coordinator->RunStep(Context().get(), step, &stepped).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(WorkerServiceTest, OnlyTheCoordinatorMayCallAWorker) {
  for (const auto& [name, role] : {std::pair{"ops", Role::kAdmin},
                                   {"alice", Role::kSubmitter},
                                   {"worker-1", Role::kWorker},
                                   {"dashboard", Role::kReader}}) {
    const auto stub = As(name, role);
    v1::AssignShardRequest assign;
    *assign.mutable_assignment() = Assignment();
    v1::AssignShardResponse assigned;
    const grpc::Status status = stub->AssignShard(Context().get(), assign, &assigned);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << name;
    EXPECT_NE(status.error_message().find("AssignShard needs the role coordinator"),
              std::string::npos)
        << status.error_message();
    v1::CheckpointRequest checkpoint;
    checkpoint.set_job_id("job-1");
    v1::CheckpointResponse state;
    EXPECT_EQ(stub->Checkpoint(Context().get(), checkpoint, &state).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST(ValidateWorkerOptions, KnowsWhichCollectivesThisBuildHas) {
  EXPECT_TRUE(ValidateWorkerOptions({.collective = "gloo"}).ok());
  EXPECT_EQ(ValidateWorkerOptions({.collective = "mpi"}).code(),
            absl::StatusCode::kInvalidArgument);
#ifndef DPFLEET_WITH_CUDA
  EXPECT_EQ(ValidateWorkerOptions({.collective = "nccl"}).code(),
            absl::StatusCode::kInvalidArgument);
#endif
}

}  // namespace
}  // namespace dpfleet::worker
