#include "worker/optimizer.h"

#include <cmath>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

TEST(Sgd, MomentumFollowsTheRecurrence) {
  auto sgd = *CreateOptimizer({.kind = OptimizerKind::kSgd, .learning_rate = 0.5, .momentum = 0.9});
  std::vector<at::Tensor> params = {at::ones({2})};
  const std::vector<at::Tensor> grads = {at::full({2}, 2.0f)};
  sgd->Step(params, grads);  // v = 2, w = 1 - 0.5 * 2 = 0
  EXPECT_FLOAT_EQ(params[0][0].item<float>(), 0.0f);
  sgd->Step(params, grads);  // v = 0.9 * 2 + 2 = 3.8, w = -1.9
  EXPECT_FLOAT_EQ(params[0][0].item<float>(), -1.9f);
}

TEST(Adam, FirstStepMovesByTheLearningRate) {
  // With bias correction, Adam's first step is lr * g / (|g| + eps) = lr * sign(g).
  auto adam = *CreateOptimizer({.kind = OptimizerKind::kAdam, .learning_rate = 0.01});
  std::vector<at::Tensor> params = {at::zeros({3})};
  adam->Step(params, {at::tensor({5.0f, -0.2f, 1e3f})});
  EXPECT_NEAR(params[0][0].item<float>(), -0.01f, 1e-6);
  EXPECT_NEAR(params[0][1].item<float>(), 0.01f, 1e-6);
  EXPECT_NEAR(params[0][2].item<float>(), -0.01f, 1e-6);
}

TEST(Lamb, ScalesEachTensorByItsTrustRatio) {
  auto lamb =
      *CreateOptimizer({.kind = OptimizerKind::kLamb, .learning_rate = 0.1, .weight_decay = 0.01});
  // From zero weights (the linear head of Mehta et al. 2022) the trust ratio is 1: an Adam step.
  std::vector<at::Tensor> zero = {at::zeros({4})};
  lamb->Step(zero, {at::tensor({1.0f, -1.0f, 2.0f, -3.0f})});
  EXPECT_NEAR(zero[0][0].item<float>(), -0.1f, 1e-5);
  // From non-zero weights the step's norm is lr * ||w||, whatever the gradient's scale.
  auto fresh = *CreateOptimizer({.kind = OptimizerKind::kLamb, .learning_rate = 0.1});
  std::vector<at::Tensor> params = {at::full({4}, 3.0f)};  // ||w|| = 6
  const at::Tensor before = params[0].clone();
  fresh->Step(params, {at::tensor({1e-3f, -5.0f, 7.0f, 0.5f})});
  EXPECT_NEAR((params[0] - before).norm().item<float>(), 0.1f * 6.0f, 1e-4);
}

TEST(LearningRateAt, WarmsUpThenFollowsTheCosine) {
  const OptimizerOptions options{.learning_rate = 1.0,
                                 .schedule = LearningRateSchedule::kCosine,
                                 .warmup_steps = 10,
                                 .total_steps = 110};
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 0), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 9), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(options, 10), 1.0);
  EXPECT_NEAR(LearningRateAt(options, 60), 0.5, 1e-12);
  EXPECT_NEAR(LearningRateAt(options, 110), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(LearningRateAt({.learning_rate = 0.3}, 1000), 0.3);
}

TEST(ParameterAverage, IsAnExponentialMovingAverage) {
  std::vector<at::Tensor> params = {at::zeros({2})};
  ParameterAverage ema(params, 0.9);
  params[0].fill_(1.0);
  ema.Update(params);
  EXPECT_NEAR(ema.average()[0][0].item<float>(), 0.1f, 1e-7);
  ema.Update(params);
  EXPECT_NEAR(ema.average()[0][0].item<float>(), 0.19f, 1e-7);
}

TEST(Optimizer, SavedStateResumesBitForBit) {
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kLamb}) {
    const OptimizerOptions options{.kind = kind, .learning_rate = 0.1, .momentum = 0.9};
    auto straight = *CreateOptimizer(options);
    auto resumed = *CreateOptimizer(options);
    std::vector<at::Tensor> a = {at::ones({3})}, b = {at::ones({3})};
    const std::vector<at::Tensor> g = {at::tensor({0.5f, -1.0f, 2.0f})};
    straight->Step(a, g);
    resumed->Step(b, g);
    auto restored = *CreateOptimizer(options);
    ASSERT_TRUE(restored->Load(resumed->Save()).ok());
    straight->Step(a, g);
    restored->Step(b, g);
    EXPECT_TRUE(at::equal(a[0], b[0])) << static_cast<int>(kind);
  }
}

TEST(CreateOptimizer, RejectsBadHyperparameters) {
  const auto bad_lr = CreateOptimizer({.learning_rate = -1});
  ASSERT_EQ(bad_lr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_lr.status().message().find("optimizer.learning_rate"), std::string::npos);
  EXPECT_FALSE(CreateOptimizer({.learning_rate = 0.1, .momentum = 1.0}).ok());
  EXPECT_FALSE(
      CreateOptimizer({.kind = OptimizerKind::kAdam, .learning_rate = 0.1, .beta2 = 1.5}).ok());
  EXPECT_FALSE(
      CreateOptimizer({.learning_rate = 0.1, .schedule = LearningRateSchedule::kCosine}).ok());
  EXPECT_FALSE(CreateOptimizer({.learning_rate = 0.1, .warmup_steps = -1}).ok());
}

}  // namespace
}  // namespace dpfleet::worker
