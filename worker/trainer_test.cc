#include "worker/trainer.h"

#include <limits>
#include <string>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "worker/checkpoint.h"
#include "worker/gloo_testing.h"

namespace dpfleet::worker {
namespace {

// A linearly separable toy problem: the label is the index of the largest of the first 4 pixels.
std::shared_ptr<const Dataset> ToyDataset(int64_t train, int64_t test) {
  auto dataset = std::make_shared<Dataset>();
  at::manual_seed(11);
  dataset->name = "toy";
  const at::Tensor inputs = at::randn({train, 1, 2, 2});
  dataset->SetTrainingSplit(inputs, inputs.flatten(1).argmax(1));
  dataset->test_inputs = at::randn({test, 1, 2, 2});
  dataset->test_labels = dataset->test_inputs.flatten(1).argmax(1);
  dataset->num_classes = 4;
  return dataset;
}

TrainerOptions ToyOptions(double noise_multiplier) {
  return {.model = "linear",
          .seed = 3,
          .sampling_rate = 0.25,
          .noise_multiplier = noise_multiplier,
          .clipping = {.clip_norm = 1.0},
          .micro_batch_size = 64,
          .optimizer = {.kind = OptimizerKind::kSgd, .learning_rate = 0.5, .momentum = 0.5}};
}

std::unique_ptr<Reducer> SingleRank() {
  std::unique_ptr<Reducer> single;
  RunOnGlooRanks(1, [&](int, std::unique_ptr<Reducer> reducer) { single = std::move(reducer); });
  return single;
}

TEST(ShardTrainer, LearnsTheToyProblem) {
  auto trainer = *ShardTrainer::Create(ToyOptions(0.5), ToyDataset(4000, 1000), SingleRank());
  const ShardTrainer::Evaluation before = trainer->EvaluateTestShard();
  for (int step = 0; step < 60; ++step) ASSERT_TRUE(trainer->RunStep().ok());
  const ShardTrainer::Evaluation after = trainer->EvaluateTestShard();
  EXPECT_EQ(after.examples, 1000);
  EXPECT_EQ(trainer->steps_done(), 60);
  EXPECT_GT(after.correct, 850) << "accuracy before training: " << before.correct / 1000.0;
}

TEST(ShardTrainer, TwoRanksEndEveryStepBitIdentical) {
  const auto dataset = ToyDataset(2000, 100);
  std::vector<uint64_t> fingerprints[2];
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(ToyOptions(1.0), dataset, std::move(reducer));
    for (int step = 0; step < 10; ++step) {
      ASSERT_TRUE(trainer->RunStep().ok());
      fingerprints[rank].push_back(trainer->ParameterFingerprint());
    }
  });
  ASSERT_EQ(fingerprints[0].size(), 10u);
  EXPECT_EQ(fingerprints[0], fingerprints[1]);
}

TEST(ShardTrainer, LambWithCosineScheduleAndAverageLearnsAndStaysBitIdentical) {
  const auto dataset = ToyDataset(2000, 1000);
  TrainerOptions options = ToyOptions(0.5);
  options.optimizer = {.kind = OptimizerKind::kLamb,
                       .learning_rate = 0.5,
                       .weight_decay = 1e-4,
                       .schedule = LearningRateSchedule::kCosine,
                       .warmup_steps = 3,
                       .total_steps = 40};
  options.ema_decay = 0.9;
  std::vector<uint64_t> fingerprints[2];
  int64_t correct[2] = {0, 0};
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
    for (int step = 0; step < 40; ++step) {
      ASSERT_TRUE(trainer->RunStep().ok());
      fingerprints[rank].push_back(trainer->ParameterFingerprint());
    }
    correct[rank] = trainer->EvaluateTestShard().correct;
    // Evaluating the average must leave the trained weights in place.
    EXPECT_EQ(trainer->ParameterFingerprint(), fingerprints[rank].back());
  });
  EXPECT_EQ(fingerprints[0], fingerprints[1]);
  EXPECT_GT(correct[0] + correct[1], 800) << "accuracy of the weight average on the toy problem";
}

// Full batch (q = 1) and no noise make a step deterministic up to the order of the summation, so
// the same job must reach the same parameters on 1, 2 and 4 workers, with the gradient reduced
// in one bucket or in one bucket per parameter.
TEST(ShardTrainer, NoiselessFullBatchJobAgreesAcrossWorkerCountsAndBuckets) {
  const auto dataset = ToyDataset(1000, 100);
  TrainerOptions options = ToyOptions(0.0);
  options.sampling_rate = 1.0;
  std::vector<at::Tensor> reference;
  for (const auto& [world, bucket_bytes] : std::vector<std::pair<int, int64_t>>{
           {1, 4 << 20}, {2, 4 << 20}, {4, 4 << 20}, {2, 1}, {4, 1}}) {
    options.bucket_bytes = bucket_bytes;
    std::vector<at::Tensor> parameters;
    absl::Mutex mu;
    RunOnGlooRanks(world, [&](int rank, std::unique_ptr<Reducer> reducer) {
      auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
      for (int step = 0; step < 5; ++step) ASSERT_TRUE(trainer->RunStep().ok());
      if (rank == 0) {
        absl::MutexLock lock(&mu);
        parameters = trainer->Parameters();
      }
    });
    ASSERT_FALSE(parameters.empty());
    if (reference.empty()) {
      reference = parameters;
      continue;
    }
    for (size_t i = 0; i < parameters.size(); ++i) {
      EXPECT_TRUE(at::allclose(parameters[i], reference[i], /*rtol=*/1e-5, /*atol=*/1e-6))
          << world << " workers, buckets of " << bucket_bytes << " bytes, parameter " << i;
    }
  }
}

// The noise: each coordinate of the update gets N(0, (sigma C)^2) / (q N), exactly once.
TEST(ShardTrainer, NoiseHasTheCalibratedVarianceAndNeverRepeats) {
  const auto dataset = ToyDataset(1000, 10);
  TrainerOptions options = ToyOptions(0.0);
  options.sampling_rate = 1.0;
  options.optimizer = {.kind = OptimizerKind::kSgd, .learning_rate = 1.0};
  options.model = "mlp";  // 2308 parameters: enough coordinates to measure the variance.
  options.noise_multiplier = 1e12;
  options.clipping.clip_norm =
      1e-12;  // Gradients (sum below 1e-9) vanish next to the noise (1 each).
  std::vector<at::Tensor> updates[2];
  // Two independent runs of the same job (same public seed): on 3 workers, where each rank noises
  // a third of each of the 4 parameters' buckets, and on one, with a single bucket.
  for (int run = 0; run < 2; ++run) {
    options.bucket_bytes = run == 0 ? 1 : 4 << 20;
    RunOnGlooRanks(run == 0 ? 3 : 1, [&](int rank, std::unique_ptr<Reducer> reducer) {
      auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
      const std::vector<at::Tensor> before = trainer->Parameters();
      ASSERT_TRUE(trainer->RunStep().ok());
      const std::vector<at::Tensor> after = trainer->Parameters();
      if (rank != 0) return;
      for (size_t i = 0; i < before.size(); ++i)
        updates[run].push_back((after[i] - before[i]).flatten());
    });
  }
  const at::Tensor first = at::cat(updates[0]).to(at::kDouble);
  const at::Tensor second = at::cat(updates[1]).to(at::kDouble);
  // update = -lr * noise / (q N), noise std sigma C per coordinate.
  const double expected_std = 1e12 * 1e-12 / 1000.0;  // 1e-3: well above float32 resolution.
  // Every coordinate is noised exactly once, whichever rank noised it: over each third (769
  // coordinates) the sample std is within 12% of the truth (4.7 standard errors), and over all
  // 2308 within 10% (7 standard errors), on 3 workers and on one.
  const int64_t n = first.numel();
  for (int64_t third = 0; third < 3; ++third) {
    const double measured = first.slice(0, n * third / 3, n * (third + 1) / 3).std().item<double>();
    EXPECT_NEAR(measured / expected_std, 1.0, 0.12) << "coordinates of rank " << third;
  }
  EXPECT_NEAR(first.std().item<double>() / expected_std, 1.0, 0.1);
  EXPECT_NEAR(second.std().item<double>() / expected_std, 1.0, 0.1);
  EXPECT_FALSE(at::equal(first, second)) << "the same job drew the same noise twice";
}

TEST(ShardTrainer, ResumesFromACheckpointOnAnotherWorkerCount) {
  const auto dataset = ToyDataset(1000, 100);
  TrainerOptions options = ToyOptions(0.0);
  options.sampling_rate = 1.0;  // Noiseless full batch: runs are comparable across worker counts.
  options.optimizer = {.kind = OptimizerKind::kAdam, .learning_rate = 0.05};
  options.ema_decay = 0.5;
  std::string checkpoint;
  std::vector<at::Tensor> straight;
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
    for (int step = 0; step < 3; ++step) ASSERT_TRUE(trainer->RunStep().ok());
    if (rank == 0) checkpoint = *trainer->Checkpoint();
    for (int step = 0; step < 3; ++step) ASSERT_TRUE(trainer->RunStep().ok());
    if (rank == 0) straight = trainer->Parameters();
  });
  RunOnGlooRanks(1, [&](int, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
    ASSERT_TRUE(trainer->Restore(checkpoint).ok());
    EXPECT_EQ(trainer->steps_done(), 3);
    for (int step = 0; step < 3; ++step) ASSERT_TRUE(trainer->RunStep().ok());
    const std::vector<at::Tensor> resumed = trainer->Parameters();
    for (size_t i = 0; i < resumed.size(); ++i) {
      EXPECT_TRUE(at::allclose(resumed[i], straight[i], 1e-5, 1e-6)) << "parameter " << i;
    }
  });
  RunOnGlooRanks(1, [&](int, std::unique_ptr<Reducer> reducer) {
    TrainerOptions other = options;
    other.model = "mlp";
    auto trainer = *ShardTrainer::Create(other, dataset, std::move(reducer));
    EXPECT_EQ(trainer->Restore(checkpoint).code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(trainer->Restore("garbage").code(), absl::StatusCode::kDataLoss);
  });
}

// A checkpoint of `parameters` and the optimizer's `optimizer_tensors` after 7 steps.
std::string HandWrittenCheckpoint(const std::vector<at::Tensor>& parameters,
                                  const std::vector<at::Tensor>& optimizer_tensors) {
  return EncodeCheckpoint({.steps_done = 7,
                           .parameters = parameters,
                           .optimizer_steps = 7,
                           .optimizer_tensors = optimizer_tensors});
}

TEST(ShardTrainer, RefusedCheckpointChangesNothing) {
  TrainerOptions options = ToyOptions(0.0);
  options.optimizer = {.kind = OptimizerKind::kAdam, .learning_rate = 0.05};
  RunOnGlooRanks(1, [&](int, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, ToyDataset(100, 10), std::move(reducer));
    ASSERT_TRUE(trainer->RunStep().ok());
    const uint64_t before = trainer->ParameterFingerprint();
    std::vector<at::Tensor> changed = trainer->Parameters();
    for (at::Tensor& p : changed) p.add_(1.0);
    std::vector<at::Tensor> moments = changed;
    moments.insert(moments.end(), changed.begin(), changed.end());
    ASSERT_TRUE(trainer->Restore(HandWrittenCheckpoint(changed, moments)).ok());
    EXPECT_NE(trainer->ParameterFingerprint(), before) << "the hand-written checkpoint is valid";
    const uint64_t restored = trainer->ParameterFingerprint();

    // Other parameters that fit, then an optimizer state that does not: nothing may be
    // half-restored.
    std::vector<at::Tensor> other = trainer->Parameters();
    for (at::Tensor& p : other) p.add_(1.0);
    std::vector<at::Tensor> wrong_shape = moments;
    wrong_shape.back() = at::zeros({3, 5});
    for (const std::vector<at::Tensor>& optimizer :
         {std::vector<at::Tensor>{changed[0]}, wrong_shape}) {
      EXPECT_EQ(trainer->Restore(HandWrittenCheckpoint(other, optimizer)).code(),
                absl::StatusCode::kFailedPrecondition);
    }
    std::vector<at::Tensor> not_finite = other;
    not_finite[0].view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(trainer->Restore(HandWrittenCheckpoint(not_finite, moments)).code(),
              absl::StatusCode::kDataLoss);
    EXPECT_EQ(trainer->ParameterFingerprint(), restored);
    EXPECT_EQ(trainer->steps_done(), 7);
  });
}

// A bright quarter at the top left (class 1) or bottom right (class 0) of noise: the scattering
// coefficients' spatial layout, which per-example GroupNorm keeps, separates them.
// Noisy 8x8 images, bright in the top-left corner for label 1 and in the bottom-right for 0.
std::shared_ptr<const Dataset> BrightCornerDataset() {
  auto dataset = std::make_shared<Dataset>();
  at::manual_seed(4);
  const at::Tensor labels = at::randint(0, 2, {400}, at::kLong);
  at::Tensor images = at::rand({400, 1, 8, 8}) * 0.5;
  for (int64_t i = 0; i < 400; ++i) {
    const int64_t corner = labels[i].item<int64_t>() == 1 ? 0 : 4;
    images[i].slice(1, corner, corner + 4).slice(2, corner, corner + 4).add_(1.0);
  }
  dataset->name = "bright";
  dataset->SetTrainingSplit(images.slice(0, 0, 300), labels.slice(0, 0, 300));
  dataset->test_inputs = images.slice(0, 300);
  dataset->test_labels = labels.slice(0, 300);
  dataset->num_classes = 2;
  return dataset;
}

TEST(ShardTrainer, TrainsAScatteringModelThroughItsCachedFront) {
  const auto dataset = BrightCornerDataset();
  TrainerOptions options = ToyOptions(0.0);
  options.model = "scatter_linear";
  options.sampling_rate = 1.0;
  auto trainer = *ShardTrainer::Create(options, dataset, SingleRank());
  for (int step = 0; step < 10; ++step) ASSERT_TRUE(trainer->RunStep().ok());
  const ShardTrainer::Evaluation evaluation = trainer->EvaluateTestShard();
  EXPECT_EQ(evaluation.examples, 100);
  EXPECT_GT(evaluation.correct, 90);
}

// Images whose label is their brightest channel, which crops and flips keep.
std::shared_ptr<const Dataset> BrightestChannelDataset(int64_t train, int64_t test) {
  auto dataset = std::make_shared<Dataset>();
  at::manual_seed(12);
  const at::Tensor inputs = at::randn({train + test, 4, 1, 1}).expand({train + test, 4, 8, 8}) +
                            0.3 * at::randn({train + test, 4, 8, 8});
  const at::Tensor labels = inputs.mean(at::IntArrayRef{2, 3}).argmax(1);
  dataset->name = "brightest";
  dataset->SetTrainingSplit(inputs.slice(0, 0, train), labels.slice(0, 0, train));
  dataset->test_inputs = inputs.slice(0, train);
  dataset->test_labels = labels.slice(0, train);
  dataset->num_classes = 4;
  return dataset;
}

TEST(ShardTrainer, AugmentationMultiplicityLearnsAndRanksStayBitIdentical) {
  const auto dataset = BrightestChannelDataset(2000, 500);
  TrainerOptions options = ToyOptions(0.5);
  options.augmentation = {.views = 4, .crop_padding = 2, .horizontal_flip = true};
  options.micro_batch_size = 100;  // 25 examples of 4 views at once.
  std::vector<uint64_t> fingerprints[2];
  int64_t correct = 0;
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
    for (int step = 0; step < 30; ++step) {
      ASSERT_TRUE(trainer->RunStep().ok());
      fingerprints[rank].push_back(trainer->ParameterFingerprint());
    }
    const ShardTrainer::Evaluation evaluation = trainer->EvaluateTestShard();
    if (rank == 0) correct = evaluation.correct;
  });
  ASSERT_EQ(fingerprints[0].size(), 30u);
  EXPECT_EQ(fingerprints[0], fingerprints[1]);
  EXPECT_GT(correct, 200);  // Of rank 0's 250 test images.
}

TEST(ShardTrainer, AugmentsAScatteringModelByComputingItsFrontOnEveryView) {
  TrainerOptions options = ToyOptions(0.0);
  options.model = "scatter_linear";
  options.sampling_rate = 1.0;
  options.augmentation = {.views = 2, .crop_padding = 1};  // A flip would move the corners.
  auto trainer = *ShardTrainer::Create(options, BrightCornerDataset(), SingleRank());
  for (int step = 0; step < 10; ++step) ASSERT_TRUE(trainer->RunStep().ok());
  EXPECT_GT(trainer->EvaluateTestShard().correct, 90);
}

TEST(ShardTrainer, ZeroInitialisedHeadWithSigmoidLossLearns) {
  TrainerOptions options = ToyOptions(0.5);
  options.zero_init_head = true;
  options.clipping.loss = Loss::kSigmoidCrossEntropy;
  RunOnGlooRanks(1, [&](int, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, ToyDataset(4000, 1000), std::move(reducer));
    for (const at::Tensor& p : trainer->Parameters()) EXPECT_EQ(p.abs().max().item<float>(), 0.0f);
    for (int step = 0; step < 60; ++step) ASSERT_TRUE(trainer->RunStep().ok());
    EXPECT_GT(trainer->EvaluateTestShard().correct, 800);
  });
}

TEST(ShardTrainer, ANoisedLossIsNoisedOnceAndTheSameOnEveryRank) {
  // A loss clip so small that the clipped sum is at most 1000 * 1e-6: what is left is the noise,
  // of std loss_noise_multiplier * loss_clip = 1, added by one rank only.
  TrainerOptions options = ToyOptions(1.0);
  options.clipping.loss_clip = 1e-6;
  options.loss_noise_multiplier = 1e6;
  const auto dataset = ToyDataset(4000, 100);
  constexpr int kSteps = 300;
  std::vector<double> noised[2];
  RunOnGlooRanks(2, [&](int rank, std::unique_ptr<Reducer> reducer) {
    auto trainer = *ShardTrainer::Create(options, dataset, std::move(reducer));
    for (int step = 0; step < kSteps; ++step) {
      const absl::StatusOr<ShardTrainer::StepResult> result = trainer->RunStep();
      ASSERT_TRUE(result.ok());
      noised[rank].push_back(result->noised_loss_sum);
    }
  });
  EXPECT_EQ(noised[0], noised[1]);
  double sum = 0, squares = 0;
  for (double x : noised[0]) {
    sum += x;
    squares += x * x;
  }
  const double mean = sum / kSteps;
  const double variance = squares / kSteps - mean * mean;
  // Once, not twice: a variance of 1 (2 if both ranks noised it), within sampling error.
  EXPECT_NEAR(variance, 1.0, 0.25);
  EXPECT_NEAR(mean, 0.0, 0.25);
}

TEST(ShardTrainer, RejectsBadOptions) {
  TrainerOptions options = ToyOptions(1.0);
  options.clipping.clip_norm = std::nan("");
  const auto trainer = ShardTrainer::Create(options, ToyDataset(10, 10), SingleRank());
  ASSERT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(trainer.status().message().find("clip_norm"), std::string::npos);
  options = ToyOptions(1.0);
  options.loss_noise_multiplier = 2.0;  // A noised loss needs a loss clip.
  const auto unclipped = ShardTrainer::Create(options, ToyDataset(10, 10), SingleRank());
  EXPECT_EQ(unclipped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unclipped.status().message().find("loss_clip"), std::string::npos);
  options = ToyOptions(1.0);
  options.augmentation = {.views = 4, .horizontal_flip = true};
  auto features = std::make_shared<Dataset>();
  features->name = "features";
  features->SetTrainingSplit(at::randn({10, 4}), at::zeros({10}, at::kLong));
  features->num_classes = 2;
  const auto not_images = ShardTrainer::Create(options, features, SingleRank());
  EXPECT_EQ(not_images.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(not_images.status().message().find("image"), std::string::npos);
  options = ToyOptions(1.0);
  options.model = "nope";
  EXPECT_EQ(ShardTrainer::Create(options, ToyDataset(10, 10), SingleRank()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::worker
