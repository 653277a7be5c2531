#include "worker/clipping.h"

#include <torch/csrc/autograd/autograd.h>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

// Relative L2 error allowed between the one-pass engine and the per-example reference in float32.
constexpr double kFloat32RelativeTolerance = 1e-5;

std::vector<at::Tensor> ZerosLike(const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> zeros;
  for (const at::Tensor& p : parameters) zeros.push_back(at::zeros_like(p).detach());
  return zeros;
}

// The definition: one backward per example, clip the concatenated gradient, sum.
std::vector<at::Tensor> NaiveClippedSum(models::Model& model, const at::Tensor& inputs,
                                        const at::Tensor& labels, double clip_norm) {
  std::vector<at::Tensor> sums = ZerosLike(model.parameters());
  for (int64_t i = 0; i < inputs.size(0); ++i) {
    const at::Tensor logits = model.Forward(inputs.slice(0, i, i + 1), nullptr);
    const at::Tensor loss =
        at::cross_entropy_loss(logits, labels.slice(0, i, i + 1), {}, at::Reduction::Sum);
    const std::vector<at::Tensor> grads = torch::autograd::grad({loss}, model.parameters());
    double squared = 0;
    for (const at::Tensor& g : grads) squared += g.to(at::kDouble).pow(2).sum().item<double>();
    const double factor = std::min(1.0, clip_norm / (std::sqrt(squared) + 1e-6));
    for (size_t p = 0; p < grads.size(); ++p) sums[p].add_(grads[p].detach() * factor);
  }
  return sums;
}

double RelativeError(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want) {
  double diff = 0, norm = 0;
  for (size_t p = 0; p < got.size(); ++p) {
    diff += (got[p].to(at::kDouble) - want[p].to(at::kDouble)).pow(2).sum().item<double>();
    norm += want[p].to(at::kDouble).pow(2).sum().item<double>();
  }
  return std::sqrt(diff / norm);
}

TEST(AccumulateClippedGradients, MatchesPerExampleReference) {
  at::manual_seed(3);
  for (const char* name : {"linear", "mlp"}) {
    for (double clip : {0.01, 1.0, 1000.0}) {  // Every example clipped, some, none.
      auto model = *models::CreateModel(name, {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
      const at::Tensor inputs = at::randn({33, 1, 28, 28});
      const at::Tensor labels = at::randint(0, 10, {33}, at::kLong);
      std::vector<at::Tensor> sums = ZerosLike(model->parameters());
      const ClippedBatch batch = *AccumulateClippedGradients(*model, inputs, labels, clip, sums);
      EXPECT_EQ(batch.examples, 33);
      EXPECT_LT(RelativeError(sums, NaiveClippedSum(*model, inputs, labels, clip)),
                kFloat32RelativeTolerance)
          << name << " clip " << clip;
    }
  }
}

TEST(AccumulateClippedGradients, EachExampleContributesAtMostTheClipNorm) {
  auto model = *models::CreateModel("mlp", {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
  const at::Tensor inputs = at::randn({1, 1, 28, 28}) * 100;
  const at::Tensor labels = at::zeros({1}, at::kLong);
  std::vector<at::Tensor> sums = ZerosLike(model->parameters());
  ASSERT_TRUE(AccumulateClippedGradients(*model, inputs, labels, 0.5, sums).ok());
  double squared = 0;
  for (const at::Tensor& s : sums) squared += s.to(at::kDouble).pow(2).sum().item<double>();
  EXPECT_LE(std::sqrt(squared), 0.5 * (1 + 1e-5));
}

TEST(AccumulateClippedGradients, RejectsBadClipNorm) {
  auto model = *models::CreateModel("linear", {.input_shape = {4}, .num_classes = 2}, 5);
  std::vector<at::Tensor> sums = ZerosLike(model->parameters());
  const auto result = AccumulateClippedGradients(*model, at::randn({2, 4}),
                                                 at::zeros({2}, at::kLong), -1.0, sums);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("clip_norm"), std::string::npos);
}

}  // namespace
}  // namespace dpfleet::worker
