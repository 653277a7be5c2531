#include "worker/worker_service.h"

#include "absl/strings/str_cat.h"
#include "common/serve.h"
#include "common/test_certificates.h"
#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

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

  WorkerServiceImpl service_{{}, {}};
  RunningServer server_;
};

TEST_F(WorkerServiceTest, RefusesUnknownDatasetAndStepsOfOtherJobs) {
  const auto coordinator = As("coordinator", Role::kCoordinator);
  v1::AssignShardRequest assign;
  *assign.mutable_assignment() = Assignment();
  v1::AssignShardResponse assigned;
  const grpc::Status status = coordinator->AssignShard(Context().get(), assign, &assigned);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("toy"), std::string::npos);

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
