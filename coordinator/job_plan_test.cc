#include "coordinator/job_plan.h"

#include <cmath>

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

v1::JobSpec GoodSpec() {
  v1::JobSpec spec;
  spec.set_dataset("fashion-mnist");
  spec.set_model("mlp");
  spec.mutable_optimizer()->set_type(v1::DP_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.5);
  spec.set_expected_batch_size(600);
  spec.set_epochs(2);
  spec.set_clip_norm(1.0);
  spec.set_target_epsilon(2.0);
  spec.set_delta(1e-5);
  spec.set_num_workers(2);
  return spec;
}

void ExpectInvalidNaming(const v1::JobSpec& spec, const std::string& field) {
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_NE(status.message().find(field), std::string::npos) << status;
}

TEST(ValidateJobSpec, AcceptsAGoodSpec) { EXPECT_TRUE(ValidateJobSpec(GoodSpec()).ok()); }

TEST(ValidateJobSpec, NamesEachBadField) {
  v1::JobSpec spec = GoodSpec();
  spec.set_clip_norm(-1);
  ExpectInvalidNaming(spec, "clip_norm");
  spec.set_clip_norm(NAN);
  ExpectInvalidNaming(spec, "clip_norm");

  spec = GoodSpec();
  spec.set_sampling_rate(1.5);
  ExpectInvalidNaming(spec, "sampling_rate");
  spec.set_sampling_rate(0);
  ExpectInvalidNaming(spec, "sampling_rate");

  spec = GoodSpec();
  spec.set_delta(1.0);
  ExpectInvalidNaming(spec, "delta");
  spec.set_delta(0);
  ExpectInvalidNaming(spec, "delta");

  spec = GoodSpec();
  spec.set_steps(0);
  ExpectInvalidNaming(spec, "steps");

  spec = GoodSpec();
  spec.set_model("resnet1000");
  ExpectInvalidNaming(spec, "model");

  spec = GoodSpec();
  spec.set_target_epsilon(-3);
  ExpectInvalidNaming(spec, "target_epsilon");

  spec = GoodSpec();
  spec.set_num_workers(0);
  ExpectInvalidNaming(spec, "num_workers");

  spec = GoodSpec();
  spec.mutable_optimizer()->set_learning_rate(0);
  ExpectInvalidNaming(spec, "optimizer.learning_rate");

  spec = GoodSpec();
  spec.clear_dataset();
  ExpectInvalidNaming(spec, "dataset");

  spec = GoodSpec();
  spec.mutable_optimizer()->set_ema_decay(1.0);
  ExpectInvalidNaming(spec, "optimizer.ema_decay");

  spec = GoodSpec();
  spec.set_low_memory_clipping(true);
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
  spec.set_clipping_mode(v1::CLIPPING_PER_LAYER);
  ExpectInvalidNaming(spec, "low_memory_clipping");

  spec = GoodSpec();
  spec.set_loss_noise_multiplier(-1);
  ExpectInvalidNaming(spec, "loss_noise_multiplier");
  spec.set_loss_noise_multiplier(2);
  ExpectInvalidNaming(spec, "loss_clip");  // A noised loss needs its sensitivity.
  spec.set_loss_clip(3);
  EXPECT_TRUE(ValidateJobSpec(spec).ok());

  spec = GoodSpec();
  spec.mutable_augmentation()->set_views(65);
  ExpectInvalidNaming(spec, "augmentation.views");
  spec.mutable_augmentation()->set_views(4);
  ExpectInvalidNaming(spec, "crop_padding or horizontal_flip");  // Four identical views.
  spec.mutable_augmentation()->set_crop_padding(-1);
  ExpectInvalidNaming(spec, "augmentation.crop_padding");
  spec.mutable_augmentation()->set_crop_padding(4);
  EXPECT_TRUE(ValidateJobSpec(spec).ok());

  spec = GoodSpec();
  spec.set_evaluate_every_steps(-5);
  ExpectInvalidNaming(spec, "evaluate_every_steps");
}

TEST(AccountedNoiseMultiplier, FallsBackToTheGradientsForJobsStoredBeforeIt) {
  v1::Job job;
  job.set_noise_multiplier(1.2);
  EXPECT_EQ(AccountedNoiseMultiplier(job), 1.2);
  job.set_accounted_noise_multiplier(0.9);
  EXPECT_EQ(AccountedNoiseMultiplier(job), 0.9);
}

TEST(PlanJob, DerivesRateAndSteps) {
  JobPlan plan = *PlanJob(GoodSpec(), 60000);
  EXPECT_DOUBLE_EQ(plan.sampling_rate, 0.01);
  EXPECT_EQ(plan.steps, 200);  // 2 epochs at q = 0.01.

  v1::JobSpec full = GoodSpec();
  full.set_full_batch(true);
  full.set_steps(3);
  plan = *PlanJob(full, 60000);
  EXPECT_EQ(plan.sampling_rate, 1.0);
  EXPECT_EQ(plan.steps, 3);

  v1::JobSpec short_cosine = GoodSpec();
  short_cosine.mutable_optimizer()->set_schedule(v1::SCHEDULE_COSINE);
  short_cosine.mutable_optimizer()->set_warmup_steps(500);
  const auto refused = PlanJob(short_cosine, 60000);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("optimizer.warmup_steps"), std::string::npos);

  v1::JobSpec too_big = GoodSpec();
  too_big.set_expected_batch_size(70000);
  EXPECT_EQ(PlanJob(too_big, 60000).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::coordinator
