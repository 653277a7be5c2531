#include "models/model.h"

#include <fstream>

#include "gtest/gtest.h"
#include "models/equivariant.h"

namespace dpfleet::models {
namespace {

const ModelShape kMnistShape{.input_shape = {1, 28, 28}, .num_classes = 10};

TEST(CreateModel, SameSeedSameParameters) {
  auto a = *CreateModel("mlp", kMnistShape, 7);
  auto b = *CreateModel("mlp", kMnistShape, 7);
  auto c = *CreateModel("mlp", kMnistShape, 8);
  EXPECT_EQ(Fingerprint(a->parameters()), Fingerprint(b->parameters()));
  EXPECT_NE(Fingerprint(a->parameters()), Fingerprint(c->parameters()));
}

TEST(CreateModel, UnknownModelListsKnownOnes) {
  const auto model = CreateModel("resnet1000", kMnistShape, 1);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("resnet1000"), std::string::npos);
  EXPECT_NE(model.status().message().find("mlp"), std::string::npos);
}

TEST(Model, EveryModelTracesEveryParameterOnce) {
  const struct {
    const char* name;
    std::vector<int64_t> shape;
  } kCases[] = {
      {"linear", {1, 28, 28}},         {"mlp", {1, 28, 28}},         {"cnn_tb", {1, 28, 28}},
      {"wrn16_4", {3, 16, 16}},        {"eq_cnn", {1, 28, 28}},      {"eq_resnet9", {3, 16, 16}},
      {"scatter_linear", {1, 28, 28}}, {"scatter_cnn", {1, 28, 28}}, {"scatter_cnn", {3, 32, 32}}};
  for (const auto& c : kCases) {
    auto model = *CreateModel(c.name, {.input_shape = c.shape, .num_classes = 10}, 1);
    std::vector<int64_t> batch_shape = {5};
    batch_shape.insert(batch_shape.end(), c.shape.begin(), c.shape.end());
    ForwardTrace trace;
    const at::Tensor logits = model->Forward(model->Preprocess(at::randn(batch_shape)), &trace);
    EXPECT_EQ(logits.sizes(), (at::IntArrayRef{5, 10})) << c.name;
    std::vector<int> owners(model->parameters().size(), 0);
    for (const auto& layer : trace.layers) {
      for (int index : layer->parameter_indices()) ++owners[index];
    }
    for (size_t i = 0; i < owners.size(); ++i) {
      EXPECT_EQ(owners[i], 1) << c.name << " " << model->parameter_names()[i];
    }
  }
}

TEST(Model, SizesMatchThePapers) {
  auto count = [](const Model& model) {
    int64_t n = 0;
    for (const at::Tensor& p : model.parameters()) n += p.numel();
    return n;
  };
  // Tramer and Boneh (2021), Table 9: 26,010 parameters for MNIST.
  EXPECT_EQ(count(**CreateModel("cnn_tb", kMnistShape, 1)), 26010);
  // Tramer and Boneh's ScatterNet models for 28x28 grayscale (81 x 7 x 7 coefficients):
  // 39,700 for the linear one, and 11,680 + 4,640 + 16,416 + 330 = 33,066 for the CNN.
  EXPECT_EQ(count(**CreateModel("scatter_linear", kMnistShape, 1)), 81 * 49 * 10 + 10);
  EXPECT_EQ(count(**CreateModel("scatter_cnn", kMnistShape, 1)), 33066);
  // The fixed front has no parameter and normalises each example on its own.
  auto scatter = *CreateModel("scatter_linear", kMnistShape, 1);
  const at::Tensor images = at::rand({2, 1, 28, 28});
  const at::Tensor features = scatter->Preprocess(images);
  EXPECT_EQ(features.sizes(), (at::IntArrayRef{2, 81, 7, 7}));
  EXPECT_TRUE(at::allclose(scatter->Preprocess(images.slice(0, 1, 2)), features.slice(0, 1, 2),
                           1e-5, 1e-5));
  EXPECT_FALSE((*CreateModel("linear", kMnistShape, 1))->has_fixed_front());
  EXPECT_EQ(
      CreateModel("scatter_cnn", {.input_shape = {784}, .num_classes = 10}, 1).status().code(),
      absl::StatusCode::kInvalidArgument);
  // WRN-16-4 has about 2.75M parameters for 3-channel inputs and 10 classes.
  const int64_t wrn =
      count(**CreateModel("wrn16_4", {.input_shape = {3, 32, 32}, .num_classes = 10}, 1));
  EXPECT_GT(wrn, 2'700'000);
  EXPECT_LT(wrn, 2'800'000);
}

TEST(Equivariance, RotatingOrFlippingTheInputLeavesTheLogitsUnchanged) {
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"eq_cnn", {1, 28, 28}}, {"eq_resnet9", {3, 16, 16}}}) {
    auto model = *CreateModel(name, {.input_shape = shape, .num_classes = 10}, 3);
    std::vector<int64_t> batch = {4};
    batch.insert(batch.end(), shape.begin(), shape.end());
    const at::Tensor x = at::randn(batch, at::kDouble);
    for (at::Tensor& p : model->parameters()) p.set_data(p.data().to(at::kDouble));
    at::NoGradGuard no_grad;
    const at::Tensor logits = model->Forward(x, nullptr);
    for (int element = 1; element < kD4Order; ++element) {
      const at::Tensor transformed = model->Forward(TransformD4(x, element), nullptr);
      EXPECT_LT((transformed - logits).abs().max().item<double>(),
                1e-9 * (1 + logits.abs().max().item<double>()))
          << name << " element " << element;
    }
    // And an ordinary (non-equivariant) model is not invariant, so the test can fail.
    if (name == "eq_cnn") {
      auto cnn = *CreateModel("cnn_tb", kMnistShape, 3);
      const at::Tensor plain = cnn->Forward(x.to(at::kFloat), nullptr);
      EXPECT_GT((cnn->Forward(TransformD4(x, 1).to(at::kFloat), nullptr) - plain)
                    .abs()
                    .max()
                    .item<float>(),
                1e-3);
    }
  }
}

TEST(Equivariance, SharedFiltersAreFarSmallerThanTheirExpansion) {
  auto count = [](const Model& model) {
    int64_t n = 0;
    for (const at::Tensor& p : model.parameters()) n += p.numel();
    return n;
  };
  const int64_t eq =
      count(**CreateModel("eq_resnet9", {.input_shape = {3, 32, 32}, .num_classes = 10}, 1));
  const int64_t wrn =
      count(**CreateModel("wrn16_4", {.input_shape = {3, 32, 32}, .num_classes = 10}, 1));
  EXPECT_LT(eq, wrn / 3);
}

TEST(Checkpoint, SaveAndLoadRoundTrip) {
  const std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/cnn.pt";
  auto trained = *CreateModel("cnn_tb", kMnistShape, 1);
  ASSERT_TRUE(SaveParameters(*trained, path).ok());
  auto fresh = *CreateModel("cnn_tb", kMnistShape, 2);
  ASSERT_NE(Fingerprint(fresh->parameters()), Fingerprint(trained->parameters()));
  ASSERT_TRUE(LoadParameters(path, *fresh).ok());
  EXPECT_EQ(Fingerprint(fresh->parameters()), Fingerprint(trained->parameters()));

  auto other = *CreateModel("mlp", kMnistShape, 1);
  EXPECT_EQ(LoadParameters(path, *other).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LoadParameters(path + ".missing", *fresh).code(), absl::StatusCode::kNotFound);
  std::ofstream(path + ".bad") << "not a checkpoint";
  EXPECT_EQ(LoadParameters(path + ".bad", *fresh).code(), absl::StatusCode::kDataLoss);
}

TEST(Fingerprint, SeesEveryBit) {
  at::Tensor t = at::zeros({4});
  const uint64_t before = Fingerprint({t});
  t.view(at::kInt)[3] = 1;  // The smallest denormal: numerically ~0, but a different bit pattern.
  EXPECT_NE(Fingerprint({t}), before);
}

}  // namespace
}  // namespace dpfleet::models
