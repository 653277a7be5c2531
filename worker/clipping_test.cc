#include "worker/clipping.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

// Relative L2 difference allowed between the one-pass engine and the per-example reference.
constexpr double kFloat32RelativeTolerance = 1e-5;
constexpr double kFloat64RelativeTolerance = 1e-10;

std::vector<at::Tensor> ZerosLike(const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> zeros;
  for (const at::Tensor& p : parameters) zeros.push_back(at::zeros_like(p).detach());
  return zeros;
}

// The definition: one backward per example (of the mean loss over its views), clip the whole (or
// each layer's) gradient, sum.
std::vector<at::Tensor> NaiveClippedSum(models::Model& model, const at::Tensor& inputs,
                                        const at::Tensor& labels, const ClippingOptions& options,
                                        const std::vector<std::vector<int>>& layer_parameters) {
  std::vector<at::Tensor> sums = ZerosLike(model.parameters());
  const int64_t views = options.views_per_example;
  for (int64_t i = 0; i < labels.size(0); ++i) {
    const at::Tensor logits = model.Forward(inputs.slice(0, i * views, (i + 1) * views), nullptr);
    const at::Tensor loss =
        SummedLoss(logits, labels.slice(0, i, i + 1).repeat({views}), options.loss) /
        static_cast<double>(views);
    const std::vector<at::Tensor> grads = torch::autograd::grad({loss}, model.parameters());
    auto factor = [&](double squared, double bound) {
      bound *= 1 - ClipMargin(inputs.scalar_type());  // The engine aims just below C.
      const double norm = std::sqrt(squared);
      return options.automatic ? bound / (norm + options.automatic_stability)
                               : std::min(1.0, bound / (norm + 1e-6));
    };
    auto squared_norm = [&](const std::vector<int>& indices) {
      double squared = 0;
      for (int p : indices) squared += grads[p].to(at::kDouble).pow(2).sum().item<double>();
      return squared;
    };
    if (options.mode == ClippingMode::kFlat) {
      std::vector<int> all;
      for (size_t p = 0; p < grads.size(); ++p) all.push_back(static_cast<int>(p));
      const double c = factor(squared_norm(all), options.clip_norm);
      for (size_t p = 0; p < grads.size(); ++p) sums[p].add_(grads[p].detach() * c);
    } else {
      const double bound =
          options.clip_norm / std::sqrt(static_cast<double>(layer_parameters.size()));
      for (const std::vector<int>& layer : layer_parameters) {
        const double c = factor(squared_norm(layer), bound);
        for (int p : layer) sums[p].add_(grads[p].detach() * c);
      }
    }
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

std::vector<std::vector<int>> LayerParameters(models::Model& model, const at::Tensor& inputs) {
  models::ForwardTrace trace;
  at::NoGradGuard no_grad;
  model.Forward(inputs, &trace);
  std::vector<std::vector<int>> layers;
  for (const auto& layer : trace.layers) layers.push_back(layer->parameter_indices());
  return layers;
}

// Runs the engine on one batch and compares its clipped sum with NaiveClippedSum, and its loss
// (closed form, with its logit gradient) with the library's loss.
void ExpectEngineMatchesReference(models::Model& model, const at::Tensor& inputs,
                                  const at::Tensor& labels, const ClippingOptions& options,
                                  const std::string& what) {
  const bool float32 = inputs.scalar_type() == at::kFloat;
  std::vector<at::Tensor> sums = ZerosLike(model.parameters());
  const absl::StatusOr<ClippedBatch> batch =
      AccumulateClippedGradients(model, inputs, labels, options, sums);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const int64_t views = options.views_per_example;
  const double loss =
      SummedLoss(model.Forward(inputs, nullptr), labels.repeat_interleave(views), options.loss)
          .item<double>() /
      static_cast<double>(views);
  EXPECT_NEAR(batch->loss_sum, loss, (float32 ? 1e-5 : 1e-12) * std::abs(loss)) << what;
  const double error = RelativeError(
      sums, NaiveClippedSum(model, inputs, labels, options, LayerParameters(model, inputs)));
  EXPECT_LT(error, float32 ? kFloat32RelativeTolerance : kFloat64RelativeTolerance)
      << what << " clip " << options.clip_norm
      << (options.mode == ClippingMode::kPerLayer ? " per-layer" : "")
      << (options.automatic ? " automatic" : "")
      << (options.loss == Loss::kSigmoidCrossEntropy ? " sigmoid" : "")
      << (options.low_memory ? " low-memory" : "") << " views " << views;
}

struct EngineCase {
  std::string model;
  std::vector<int64_t> shape;
  int64_t batch;
};

class EngineMatchesReference : public ::testing::TestWithParam<EngineCase> {
 protected:
  // Checks the engine on the case's model in float32 and float64, for each of `modes`, on random
  // examples of options.views_per_example random views each.
  static void ExpectMatchesInBothPrecisions(const std::vector<ClippingOptions>& modes,
                                            uint64_t seed) {
    const EngineCase& c = GetParam();
    for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
      for (const ClippingOptions& options : modes) {
        auto model = *models::CreateModel(c.model, {.input_shape = c.shape, .num_classes = 10}, 5);
        for (at::Tensor& p : model->parameters()) p.set_data(p.data().to(dtype));
        at::Generator generator = at::detail::createCPUGenerator(seed);
        std::vector<int64_t> shape = {c.batch * options.views_per_example};
        shape.insert(shape.end(), c.shape.begin(), c.shape.end());
        // Models with a fixed front (scattering) are traced on what it makes of the examples.
        const at::Tensor inputs =
            model->Preprocess(at::empty(shape, dtype).normal_(0, 1, generator)).to(dtype);
        const at::Tensor labels = at::randint(0, 10, {c.batch}, generator, at::kLong);
        ExpectEngineMatchesReference(*model, inputs, labels, options,
                                     c.model + " " + at::toString(dtype));
      }
    }
  }
};

TEST_P(EngineMatchesReference, InFloat32AndFloat64ForEveryClippingMode) {
  ExpectMatchesInBothPrecisions(
      {ClippingOptions{.clip_norm = 0.01}, ClippingOptions{.clip_norm = 1.0},
       ClippingOptions{.clip_norm = 1e4},
       ClippingOptions{.clip_norm = 1.0, .mode = ClippingMode::kPerLayer},
       ClippingOptions{.clip_norm = 1.0, .automatic = true},
       ClippingOptions{.clip_norm = 1.0, .loss = Loss::kSigmoidCrossEntropy},
       ClippingOptions{.clip_norm = 0.01, .low_memory = true},
       ClippingOptions{.clip_norm = 1.0, .automatic = true, .low_memory = true}},
      17);
}

// Augmentation multiplicity: the engine's sum matches clipping each example's mean gradient over
// its views, on every model and in every mode (the views here are independent random inputs).
TEST_P(EngineMatchesReference, WithSeveralViewsPerExample) {
  ExpectMatchesInBothPrecisions(
      {ClippingOptions{.clip_norm = 0.01, .views_per_example = 3},
       ClippingOptions{.clip_norm = 1e4, .views_per_example = 3},
       ClippingOptions{.clip_norm = 1.0, .mode = ClippingMode::kPerLayer, .views_per_example = 3},
       ClippingOptions{.clip_norm = 1.0, .automatic = true, .views_per_example = 3},
       ClippingOptions{.clip_norm = 0.01, .low_memory = true, .views_per_example = 3}},
      29);
}

TEST_P(EngineMatchesReference, NonFiniteExamplesContributeNothingInEveryMode) {
  const EngineCase& c = GetParam();
  for (const ClippingOptions& options :
       {ClippingOptions{.clip_norm = 1.0},
        ClippingOptions{.clip_norm = 1.0, .mode = ClippingMode::kPerLayer},
        ClippingOptions{.clip_norm = 1.0, .automatic = true},
        ClippingOptions{.clip_norm = 1.0, .loss = Loss::kSigmoidCrossEntropy},
        ClippingOptions{.clip_norm = 1.0, .low_memory = true, .loss_clip = 2.0}}) {
    auto model = *models::CreateModel(c.model, {.input_shape = c.shape, .num_classes = 10}, 5);
    at::Generator generator = at::detail::createCPUGenerator(23);
    std::vector<int64_t> shape = {c.batch};
    shape.insert(shape.end(), c.shape.begin(), c.shape.end());
    const at::Tensor clean = at::empty(shape, at::kFloat).normal_(0, 1, generator);
    const at::Tensor labels = at::randint(0, 10, {c.batch}, generator, at::kLong);
    // The same examples with three more among them: all inf, one NaN value, one inf value.
    std::vector<int64_t> one = shape;
    one[0] = 1;
    at::Tensor with_nan = at::zeros(one);
    with_nan.view({-1})[7] = std::nan("");
    at::Tensor with_inf = at::zeros(one);
    with_inf.view({-1})[3] = -INFINITY;
    const at::Tensor dirty = at::cat(
        {clean.slice(0, 0, 1), at::full(one, INFINITY), with_nan, clean.slice(0, 1), with_inf});
    const at::Tensor dirty_labels = at::cat({labels.slice(0, 0, 1), at::full({2}, 2, at::kLong),
                                             labels.slice(0, 1), at::full({1}, 2, at::kLong)});
    ASSERT_EQ(dirty.size(0), c.batch + 3);

    std::vector<at::Tensor> want = ZerosLike(model->parameters());
    const ClippedBatch clean_batch =
        *AccumulateClippedGradients(*model, model->Preprocess(clean), labels, options, want);
    std::vector<at::Tensor> got = ZerosLike(model->parameters());
    const ClippedBatch dirty_batch =
        *AccumulateClippedGradients(*model, model->Preprocess(dirty), dirty_labels, options, got);
    EXPECT_EQ(dirty_batch.non_finite_examples, 3) << c.model;
    EXPECT_EQ(dirty_batch.examples, c.batch + 3);
    EXPECT_EQ(clean_batch.non_finite_examples, 0);
    EXPECT_LT(RelativeError(got, want), 1e-6) << c.model;
    EXPECT_NEAR(dirty_batch.loss_sum, clean_batch.loss_sum, 1e-5 * clean_batch.loss_sum);
    EXPECT_NEAR(dirty_batch.clipped_loss_sum, clean_batch.clipped_loss_sum,
                1e-5 * clean_batch.loss_sum);

    // A batch of nothing but non-finite examples adds nothing at all.
    std::vector<at::Tensor> none = ZerosLike(model->parameters());
    const ClippedBatch all_bad = *AccumulateClippedGradients(
        *model, model->Preprocess(at::full(shape, NAN)), labels, options, none);
    EXPECT_EQ(all_bad.non_finite_examples, c.batch);
    for (const at::Tensor& sum : none) EXPECT_EQ(sum.abs().sum().item<double>(), 0.0);
  }
}

TEST(AccumulateClippedGradients, AnExampleWhoseActivationsOverflowContributesNothing) {
  // Finite inputs whose float32 activations overflow to inf (as a float16 feature shard's can).
  auto model = *models::CreateModel("mlp", {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
  at::Tensor inputs = at::randn({4, 1, 28, 28});
  inputs[2].fill_(3e38);
  std::vector<at::Tensor> sums = ZerosLike(model->parameters());
  const ClippedBatch batch = *AccumulateClippedGradients(*model, inputs, at::zeros({4}, at::kLong),
                                                         {.clip_norm = 1.0}, sums);
  EXPECT_EQ(batch.non_finite_examples, 1);
  std::vector<at::Tensor> want = ZerosLike(model->parameters());
  const at::Tensor finite = at::cat({inputs.slice(0, 0, 2), inputs.slice(0, 3)});
  ASSERT_TRUE(AccumulateClippedGradients(*model, finite, at::zeros({3}, at::kLong),
                                         {.clip_norm = 1.0}, want)
                  .ok());
  EXPECT_LT(RelativeError(sums, want), 1e-6);
  EXPECT_TRUE(std::isfinite(batch.loss_sum));
}

INSTANTIATE_TEST_SUITE_P(
    Models, EngineMatchesReference,
    ::testing::Values(EngineCase{"linear", {1, 28, 28}, 9}, EngineCase{"mlp", {1, 28, 28}, 9},
                      EngineCase{"cnn_tb", {1, 28, 28}, 6}, EngineCase{"wrn16_4", {3, 8, 8}, 3},
                      EngineCase{"eq_cnn", {1, 28, 28}, 3}, EngineCase{"eq_resnet9", {3, 8, 8}, 2},
                      EngineCase{"scatter_linear", {1, 28, 28}, 4},
                      EngineCase{"scatter_cnn", {1, 28, 28}, 4}),
    [](const ::testing::TestParamInfo<EngineCase>& info) { return info.param.model; });

// Layers no zoo model uses yet: embeddings, sequence inputs to Linear (both the ghost and the
// materialised path), LayerNorm, grouped and strided convolutions on the ghost path.
class SequenceModel final : public models::Model {
 public:
  explicit SequenceModel(int64_t positions)
      : generator_(at::detail::createCPUGenerator(3)),
        embedding_(parameters_, "embed", 50, 8, generator_),
        norm_(parameters_, "norm", 8),
        wide_(parameters_, "wide", 8, 64, true, generator_),      // 2T^2 < p d for short sequences.
        narrow_(parameters_, "narrow", 64, 4, true, generator_),  // Materialised for long ones.
        head_(parameters_, "head", 4, 10, true, generator_),
        positions_(positions) {}

  at::Tensor Forward(const at::Tensor& x, models::ForwardTrace* trace) override {
    // Inputs are token ids carried as floats so every test model shares one input type.
    const at::Tensor ids =
        x.reshape({x.size(0), positions_}).abs().mul(7).remainder(50).to(at::kLong);
    at::Tensor h = norm_.Forward(parameters_, embedding_.Forward(parameters_, ids, trace), trace);
    h = at::tanh(wide_.Forward(parameters_, h, trace));
    h = narrow_.Forward(parameters_, h, trace);
    return head_.Forward(parameters_, h.mean(1), trace);
  }

 private:
  at::Generator generator_;
  models::Embedding embedding_;
  models::LayerNorm norm_;
  models::Linear wide_;
  models::Linear narrow_;
  models::Linear head_;
  int64_t positions_;
};

class GroupedConvModel final : public models::Model {
 public:
  GroupedConvModel()
      : generator_(at::detail::createCPUGenerator(4)),
        conv1_(parameters_, "conv1",
               {.in_channels = 4,
                .out_channels = 8,
                .kernel = 3,
                .stride = 2,
                .padding = 1,
                .groups = 2},
               generator_),
        norm_(parameters_, "norm", 4, 8),
        conv2_(parameters_, "conv2",
               {.in_channels = 8, .out_channels = 64, .kernel = 3, .stride = 2, .groups = 4},
               generator_),
        // Weight standardisation with a bias, on the ghost path (few positions, many weights) and
        // on the materialised path (many positions).
        conv3_(parameters_, "conv3",
               {.in_channels = 64,
                .out_channels = 32,
                .kernel = 1,
                .groups = 2,
                .standardize_weight = true},
               generator_),
        conv4_(parameters_, "conv4",
               {.in_channels = 4, .out_channels = 4, .kernel = 1, .standardize_weight = true},
               generator_),
        // Materialised norms where the output gradient is smaller than the per-example weight
        // gradients, so the engine keeps the output gradient.
        conv5_(parameters_, "conv5",
               {.in_channels = 8,
                .out_channels = 4,
                .kernel = 3,
                .padding = 1,
                .bias = false,
                .standardize_weight = true},
               generator_),
        head_(parameters_, "head", 40, 10, true, generator_) {}

  at::Tensor Forward(const at::Tensor& x, models::ForwardTrace* trace) override {
    const at::Tensor side = conv4_.Forward(parameters_, x, trace).mean(at::IntArrayRef{2, 3});
    at::Tensor h =
        at::relu(norm_.Forward(parameters_, conv1_.Forward(parameters_, x, trace), trace));
    const at::Tensor side2 = conv5_.Forward(parameters_, h, trace).mean(at::IntArrayRef{2, 3});
    h = conv3_.Forward(parameters_, conv2_.Forward(parameters_, h, trace), trace);
    return head_.Forward(parameters_, at::cat({h.mean(at::IntArrayRef{2, 3}), side, side2}, 1),
                         trace);
  }

 private:
  at::Generator generator_;
  models::Conv2d conv1_;
  models::GroupNorm norm_;
  models::Conv2d conv2_;
  models::Conv2d conv3_;
  models::Conv2d conv4_;
  models::Conv2d conv5_;
  models::Linear head_;
};

TEST(AccumulateClippedGradients, MatchesReferenceOnEveryLayerType) {
  for (const bool sequence : {true, false}) {
    for (const int64_t positions : {3, 40}) {
      if (!sequence && positions != 3) continue;  // Positions only shape the sequence model.
      for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
        std::unique_ptr<models::Model> model;
        at::Tensor inputs;  // Two views of each of the 5 examples; the first pass reads one.
        if (sequence) {
          model = std::make_unique<SequenceModel>(positions);
          inputs = at::randn({10, positions}, dtype);
        } else {
          model = std::make_unique<GroupedConvModel>();
          inputs = at::randn({10, 4, 9, 9}, dtype);
        }
        for (at::Tensor& p : model->parameters()) p.set_data(p.data().to(dtype));
        const at::Tensor labels = at::randint(0, 10, {5}, at::kLong);
        for (const ClippingOptions& options :
             {ClippingOptions{.clip_norm = 0.1},
              ClippingOptions{.clip_norm = 0.1, .mode = ClippingMode::kPerLayer},
              ClippingOptions{.clip_norm = 0.1, .views_per_example = 2},
              ClippingOptions{
                  .clip_norm = 0.1, .mode = ClippingMode::kPerLayer, .views_per_example = 2}}) {
          ExpectEngineMatchesReference(
              *model, inputs.slice(0, 0, 5 * options.views_per_example), labels, options,
              (sequence ? "sequence T=" + std::to_string(positions) : std::string("grouped conv")) +
                  " " + at::toString(dtype));
        }
      }
    }
  }
}

TEST(AccumulateClippedGradients, LowMemoryClippingRefusesPerLayerClipping) {
  auto model = *models::CreateModel("mlp", {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
  const at::Tensor inputs = at::randn({4, 1, 28, 28});
  const at::Tensor labels = at::zeros({4}, at::kLong);
  std::vector<at::Tensor> sums = ZerosLike(model->parameters());
  EXPECT_EQ(AccumulateClippedGradients(
                *model, inputs, labels,
                {.clip_norm = 1.0, .mode = ClippingMode::kPerLayer, .low_memory = true}, sums)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AccumulateClippedGradients, LowMemoryClippingReachesLayersFedByTokenIds) {
  // The embedding's input is integer ids: no gradient flows to the model's inputs, yet every
  // layer's output gradient is visited.
  SequenceModel sequence(4);
  ExpectEngineMatchesReference(sequence, at::randn({3, 4}), at::randint(0, 10, {3}, at::kLong),
                               {.clip_norm = 0.1, .low_memory = true}, "sequence, low memory");
}

// The norm, in double, of what one example added to zeroed sums.
double ContributionNorm(models::Model& model, const at::Tensor& input, const at::Tensor& label,
                        const ClippingOptions& options) {
  std::vector<at::Tensor> sums = ZerosLike(model.parameters());
  EXPECT_TRUE(AccumulateClippedGradients(model, input, label, options, sums).ok());
  double squared = 0;
  for (const at::Tensor& s : sums) squared += s.to(at::kDouble).pow(2).sum().item<double>();
  return std::sqrt(squared);
}

TEST(AccumulateClippedGradients, EachExampleContributesAtMostTheClipNormWithNoTolerance) {
  at::manual_seed(3);
  for (const std::string name : {"linear", "mlp", "cnn_tb"}) {
    auto model = *models::CreateModel(name, {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
    for (const double scale : {1e-6, 1.0, 100.0, 1e4}) {
      for (int trial = 0; trial < 4; ++trial) {
        const at::Tensor input = at::randn({1, 1, 28, 28}) * scale;
        const at::Tensor label = at::randint(0, 10, {1}, at::kLong);
        for (const ClippingOptions& options :
             {ClippingOptions{.clip_norm = 0.01}, ClippingOptions{.clip_norm = 0.5},
              ClippingOptions{.clip_norm = 10.0},
              ClippingOptions{.clip_norm = 0.5, .mode = ClippingMode::kPerLayer},
              ClippingOptions{.clip_norm = 0.5, .automatic = true},
              ClippingOptions{.clip_norm = 0.5, .low_memory = true}}) {
          EXPECT_LE(ContributionNorm(*model, input, label, options), options.clip_norm)
              << name << " scale " << scale;
        }
      }
    }
    // Clip norms just above and just below the example's own gradient norm.
    const at::Tensor input = at::randn({1, 1, 28, 28});
    const at::Tensor label = at::zeros({1}, at::kLong);
    const double norm = ContributionNorm(*model, input, label, {.clip_norm = 1e30});
    for (const double relative : {-1e-3, -1e-5, -1e-7, 0.0, 1e-7, 1e-5, 1e-3}) {
      const double clip = norm * (1 + relative);
      EXPECT_LE(ContributionNorm(*model, input, label, {.clip_norm = clip}), clip)
          << name << " clip at " << relative << " of the norm";
      EXPECT_LE(ContributionNorm(*model, input, label, {.clip_norm = clip, .low_memory = true}),
                clip);
    }
  }
}

// However many views an example has, and however alike (identical views would add up to K times
// one view's gradient if each were clipped alone), together they contribute at most C.
TEST(AccumulateClippedGradients, TheViewsOfOneExampleContributeAtMostTheClipNormTogether) {
  at::manual_seed(5);
  for (const std::string name : {"linear", "cnn_tb"}) {
    auto model = *models::CreateModel(name, {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
    const at::Tensor image = at::randn({1, 1, 28, 28}) * 10;
    const at::Tensor label = at::randint(0, 10, {1}, at::kLong);
    for (const int64_t views : {1, 2, 8, 64}) {
      for (const bool identical : {true, false}) {
        const at::Tensor inputs = identical ? image.expand({views, 1, 28, 28}).contiguous()
                                            : image + 0.1 * at::randn({views, 1, 28, 28});
        for (const ClippingOptions& options :
             {ClippingOptions{.clip_norm = 0.01, .views_per_example = views},
              ClippingOptions{
                  .clip_norm = 0.5, .mode = ClippingMode::kPerLayer, .views_per_example = views},
              ClippingOptions{.clip_norm = 0.5, .automatic = true, .views_per_example = views},
              ClippingOptions{.clip_norm = 0.5, .low_memory = true, .views_per_example = views}}) {
          EXPECT_LE(ContributionNorm(*model, inputs, label, options), options.clip_norm)
              << name << " " << views << (identical ? " identical" : " distinct") << " views";
        }
      }
    }
  }
}

// An example one of whose views is not finite is left out whole; its other views add nothing.
TEST(AccumulateClippedGradients, AnExampleWithOneNonFiniteViewContributesNothing) {
  auto model = *models::CreateModel("cnn_tb", {.input_shape = {1, 28, 28}, .num_classes = 10}, 5);
  const at::Tensor inputs = at::randn({3 * 4, 1, 28, 28});
  const at::Tensor labels = at::randint(0, 10, {3}, at::kLong);
  at::Tensor dirty = inputs.clone();
  dirty[5].view({-1})[100] = NAN;  // Example 1's second view.
  const ClippingOptions options{.clip_norm = 1.0, .views_per_example = 4};
  std::vector<at::Tensor> got = ZerosLike(model->parameters());
  const ClippedBatch batch = *AccumulateClippedGradients(*model, dirty, labels, options, got);
  EXPECT_EQ(batch.examples, 3);
  EXPECT_EQ(batch.non_finite_examples, 1);
  std::vector<at::Tensor> want = ZerosLike(model->parameters());
  ASSERT_TRUE(AccumulateClippedGradients(*model,
                                         at::cat({inputs.slice(0, 0, 4), inputs.slice(0, 8, 12)}),
                                         at::stack({labels[0], labels[2]}), options, want)
                  .ok());
  EXPECT_LT(RelativeError(got, want), 1e-6);
  // Inputs that are not views_per_example rows per label are refused.
  EXPECT_EQ(AccumulateClippedGradients(*model, inputs.slice(0, 0, 10), labels, options, got)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AccumulateClippedGradients, ClipsEachExamplesLossForTheNoisedLoss) {
  for (const Loss loss : {Loss::kSoftmaxCrossEntropy, Loss::kSigmoidCrossEntropy}) {
    auto model = *models::CreateModel("linear", {.input_shape = {4}, .num_classes = 3}, 5);
    // Large inputs give some examples losses far above the clip, others below.
    const at::Tensor inputs = at::randn({64, 4}) * 10;
    const at::Tensor labels = at::randint(0, 3, {64}, at::kLong);
    std::vector<at::Tensor> sums = ZerosLike(model->parameters());
    const ClippedBatch batch = *AccumulateClippedGradients(
        *model, inputs, labels, {.clip_norm = 1.0, .loss = loss, .loss_clip = 2.0}, sums);
    double expected_sum = 0, expected_clipped = 0;
    for (int64_t i = 0; i < 64; ++i) {
      const double example = SummedLoss(model->Forward(inputs.slice(0, i, i + 1), nullptr),
                                        labels.slice(0, i, i + 1), loss)
                                 .item<double>();
      expected_sum += example;
      expected_clipped += std::min(example, 2.0);
    }
    EXPECT_NEAR(batch.loss_sum, expected_sum, 1e-4 * expected_sum);
    EXPECT_NEAR(batch.clipped_loss_sum, expected_clipped, 1e-4 * expected_clipped);
    EXPECT_LT(batch.clipped_loss_sum, batch.loss_sum);
    EXPECT_LE(batch.clipped_loss_sum, 64 * 2.0);
  }
}

TEST(AccumulateClippedGradients, RejectsBadClipNorm) {
  auto model = *models::CreateModel("linear", {.input_shape = {4}, .num_classes = 2}, 5);
  std::vector<at::Tensor> sums = ZerosLike(model->parameters());
  const auto result = AccumulateClippedGradients(
      *model, at::randn({2, 4}), at::zeros({2}, at::kLong), {.clip_norm = -1.0}, sums);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("clip_norm"), std::string::npos);
}

// A model with BatchNorm: the engine must refuse it by name before any step runs.
class BatchNormModel final : public models::Model {
 public:
  BatchNormModel()
      : generator_(at::detail::createCPUGenerator(1)),
        conv_(parameters_, "conv", {.in_channels = 1, .out_channels = 4, .kernel = 3}, generator_),
        norm_(parameters_, "bn1", 4),
        head_(parameters_, "head", 4 * 26 * 26, 10, true, generator_) {}
  at::Tensor Forward(const at::Tensor& x, models::ForwardTrace* trace) override {
    at::Tensor h = norm_.Forward(parameters_, conv_.Forward(parameters_, x, trace), trace);
    return head_.Forward(parameters_, h.flatten(1), trace);
  }

 private:
  at::Generator generator_;
  models::Conv2d conv_;
  models::BatchNorm2d norm_;
  models::Linear head_;
};

TEST(CheckPrivatelyTrainable, RefusesBatchNormByName) {
  BatchNormModel model;
  const absl::Status status = CheckPrivatelyTrainable(model, at::randn({2, 1, 28, 28}));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("bn1"), std::string::npos) << status;
  EXPECT_NE(status.message().find("BatchNorm2d"), std::string::npos) << status;
  auto good = *models::CreateModel("wrn16_4", {.input_shape = {3, 8, 8}, .num_classes = 10}, 1);
  EXPECT_TRUE(CheckPrivatelyTrainable(*good, at::randn({2, 3, 8, 8})).ok());
}

}  // namespace
}  // namespace dpfleet::worker
