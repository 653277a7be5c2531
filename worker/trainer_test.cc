#include "worker/trainer.h"

#include "gtest/gtest.h"
#include "worker/gloo_testing.h"

namespace dpfleet::worker {
namespace {

// A linearly separable toy problem: the label is the index of the largest of the first 4 pixels.
std::shared_ptr<const ImageDataset> ToyDataset(int64_t train, int64_t test) {
  auto dataset = std::make_shared<ImageDataset>();
  at::manual_seed(11);
  dataset->name = "toy";
  dataset->train_images = at::randn({train, 1, 2, 2});
  dataset->train_labels = dataset->train_images.flatten(1).argmax(1);
  dataset->test_images = at::randn({test, 1, 2, 2});
  dataset->test_labels = dataset->test_images.flatten(1).argmax(1);
  dataset->num_classes = 4;
  return dataset;
}

TrainerOptions ToyOptions(double noise_multiplier) {
  return {.model = "linear", .seed = 3, .sampling_rate = 0.25, .noise_multiplier = noise_multiplier,
          .clipping = {.clip_norm = 1.0}, .micro_batch_size = 64,
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
  options.optimizer = {.kind = OptimizerKind::kLamb, .learning_rate = 0.5, .weight_decay = 1e-4,
                       .schedule = LearningRateSchedule::kCosine, .warmup_steps = 3, .total_steps = 40};
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

TEST(ShardTrainer, RejectsBadOptions) {
  TrainerOptions options = ToyOptions(1.0);
  options.clipping.clip_norm = std::nan("");
  const auto trainer = ShardTrainer::Create(options, ToyDataset(10, 10), SingleRank());
  ASSERT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(trainer.status().message().find("clip_norm"), std::string::npos);
  options = ToyOptions(1.0);
  options.model = "nope";
  EXPECT_EQ(ShardTrainer::Create(options, ToyDataset(10, 10), SingleRank()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::worker
