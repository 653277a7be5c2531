#include "models/model.h"

#include "gtest/gtest.h"

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

TEST(Model, ForwardShapesAndTrace) {
  for (const char* name : {"linear", "mlp"}) {
    auto model = *CreateModel(name, kMnistShape, 1);
    ForwardTrace trace;
    const at::Tensor logits = model->Forward(at::randn({5, 1, 28, 28}), &trace);
    EXPECT_EQ(logits.sizes(), (at::IntArrayRef{5, 10}));
    EXPECT_EQ(trace.linear_layers.size(), model->parameters().size() / 2) << name;
    for (const LinearLayerTrace& layer : trace.linear_layers) {
      EXPECT_EQ(layer.input.size(0), 5);
      EXPECT_EQ(layer.output.size(1), model->parameters()[layer.weight_index].size(0));
    }
  }
}

TEST(Fingerprint, SeesEveryBit) {
  at::Tensor t = at::zeros({4});
  const uint64_t before = Fingerprint({t});
  t.view(at::kInt)[3] = 1;  // The smallest denormal: numerically ~0, but a different bit pattern.
  EXPECT_NE(Fingerprint({t}), before);
}

}  // namespace
}  // namespace dpfleet::models
