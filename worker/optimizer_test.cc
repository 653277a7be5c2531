#include "worker/optimizer.h"

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

TEST(CreateOptimizer, RejectsBadHyperparameters) {
  const auto bad_lr = CreateOptimizer({.learning_rate = -1});
  ASSERT_EQ(bad_lr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_lr.status().message().find("optimizer.learning_rate"), std::string::npos);
  EXPECT_FALSE(CreateOptimizer({.learning_rate = 0.1, .momentum = 1.0}).ok());
  EXPECT_FALSE(CreateOptimizer({.kind = OptimizerKind::kAdam, .learning_rate = 0.1, .beta2 = 1.5}).ok());
}

}  // namespace
}  // namespace dpfleet::worker
