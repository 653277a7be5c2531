#ifndef DPFLEET_FUZZ_TOY_TRAINER_H_
#define DPFLEET_FUZZ_TOY_TRAINER_H_

// The trainer whose checkpoints checkpoint_fuzz restores, and write_seeds writes: a linear model
// with Adam and a weight average (so a checkpoint holds every kind of state) on 8 toy examples.

#include <memory>

#include "fuzz/fuzz_support.h"
#include "worker/trainer.h"

namespace dpfleet::fuzz {

// Restore never reduces: a one-rank reducer that sums nothing is enough.
class OneRank final : public worker::Reducer {
 public:
  absl::Status AllReduceSum(at::Tensor&) override { return absl::OkStatus(); }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
};

inline std::unique_ptr<worker::ShardTrainer> ToyTrainer() {
  auto dataset = std::make_shared<worker::Dataset>();
  dataset->name = "toy";
  const at::Tensor inputs = at::arange(32, at::kFloat).reshape({8, 1, 2, 2});
  const at::Tensor labels = at::arange(8, at::kLong).remainder(4);
  dataset->SetTrainingSplit(inputs, labels);
  dataset->test_inputs = inputs;
  dataset->test_labels = labels;
  dataset->num_classes = 4;
  const worker::TrainerOptions options = {
      .model = "linear",
      .seed = 3,
      .sampling_rate = 0.5,
      .noise_multiplier = 1.0,
      .clipping = {.clip_norm = 1.0},
      .optimizer = {.kind = worker::OptimizerKind::kAdam, .learning_rate = 0.1},
      .ema_decay = 0.9};
  auto created = worker::ShardTrainer::Create(options, dataset, std::make_unique<OneRank>());
  Require(created.ok(), "create the toy trainer: " + created.status().ToString());
  return *std::move(created);
}

}  // namespace dpfleet::fuzz

#endif  // DPFLEET_FUZZ_TOY_TRAINER_H_
