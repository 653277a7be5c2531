#include "worker/worker_service.h"

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

TEST(WorkerService, RefusesUnknownDatasetAndStepsOfOtherJobs) {
  WorkerServiceImpl service({}, {});
  grpc::ServerContext context;
  v1::AssignShardRequest assign;
  *assign.mutable_assignment() = Assignment();
  v1::AssignShardResponse assigned;
  const grpc::Status status = service.AssignShard(&context, &assign, &assigned);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("toy"), std::string::npos);

  v1::RunStepRequest step;
  step.set_job_id("job-1");
  v1::RunStepResponse stepped;
  EXPECT_EQ(service.RunStep(&context, &step, &stepped).error_code(), grpc::StatusCode::NOT_FOUND);
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
