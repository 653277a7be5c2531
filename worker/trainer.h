#ifndef DPFLEET_WORKER_TRAINER_H_
#define DPFLEET_WORKER_TRAINER_H_

// One worker's part of a distributed DP-SGD job. Every step, on every rank:
//   1. Poisson-sample this rank's shard at rate q with OS randomness (the shards tile the
//      dataset, so the union over ranks is a Poisson sample of all of it);
//   2. add the clipped per-example gradients of the sample into one flat buffer (micro-batches
//      bound memory);
//   3. each rank adds N(0, (sigma C)^2) noise to its own 1/W slice of the coordinates, so the sum
//      carries the noise exactly once on every coordinate;
//   4. all-reduce the buffers (every rank receives the same bits), in buckets of whole parameters:
//      in the last micro-batch a bucket is noised and its all-reduce started as soon as its
//      layers' clipped sums are final, while the sums of the remaining layers are computed;
//   5. divide by the expected batch size q N (not the realised one, which would depend on the
//      data);
//   6. take the optimizer step. All ranks started from the same parameters and apply the same
//      update, so they hold bit-identical parameters after every step.
// With a noised loss (loss_noise_multiplier > 0), the sum of the sample's losses clipped to
// [0, clipping.loss_clip] is noised once, by one rank, and all-reduced after the gradient, so
// every rank holds the same noised sum; the job is accounted for both releases
// (accountant/mechanism.h, CombinedNoiseMultiplier).

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/model.h"
#include "worker/augmentation.h"
#include "worker/clipping.h"
#include "worker/dataset.h"
#include "worker/fixed_front_cache.h"
#include "worker/optimizer.h"
#include "worker/reducer.h"

namespace dpfleet::worker {

struct TrainerOptions {
  std::string model;
  uint64_t seed = 0;  // Public: model initialisation only.
  double sampling_rate = 0;
  double noise_multiplier = 0;
  // Clip norm C (the noise std is noise_multiplier * C) and how examples are clipped.
  ClippingOptions clipping;
  // When > 0, release the clipped loss sum with N(0, (loss_noise_multiplier * loss_clip)^2).
  double loss_noise_multiplier = 0;
  // Largest number of examples pushed through the model at once (with augmentation, of views).
  int64_t micro_batch_size = 256;
  // Augmentation multiplicity: each sampled example's gradient is the mean over this many random
  // views before clipping (augmentation.h). A model with a fixed front computes it on each view
  // instead of reading its cache, since the views are new images every step.
  AugmentationOptions augmentation;
  OptimizerOptions optimizer;
  // Decay of the exponential moving average of the weights used for evaluation; 0: no average.
  double ema_decay = 0;
  // Start the output layer (the model's last weight and bias) at zero, as Mehta et al. (2022) do
  // for linear heads: the first update is then the noised gradient alone.
  bool zero_init_head = false;
  // The training rows this rank samples, [shard_begin, shard_end), which it must hold. Unset
  // (shard_end 0): the even split [rank N / W, (rank + 1) N / W) of the N rows.
  int64_t shard_begin = 0;
  int64_t shard_end = 0;
  // The gradient buffer is all-reduced in buckets of whole parameters of at least this many bytes
  // (the last may be smaller), in parameter order.
  int64_t bucket_bytes = 4 << 20;
};

class ShardTrainer {
 public:
  // Builds the model and optimizer, checks that the model can be trained privately, and selects
  // this rank's shard of `dataset` (options.shard_begin/end; the reducer fixes rank and world
  // size W). Errors: kInvalidArgument for a bad option (naming it), from CreateModel or
  // CreateOptimizer; kFailedPrecondition for a shard this worker does not hold, or from
  // CheckPrivatelyTrainable.
  static absl::StatusOr<std::unique_ptr<ShardTrainer>> Create(
      const TrainerOptions& options, std::shared_ptr<const Dataset> dataset,
      std::unique_ptr<Reducer> reducer);

  ShardTrainer(const ShardTrainer&) = delete;
  ShardTrainer& operator=(const ShardTrainer&) = delete;

  struct StepResult {
    // Diagnostics of this rank's sample, before the update. Not covered by the DP guarantee.
    double loss_sum = 0;
    int64_t batch_size = 0;
    int64_t non_finite_examples = 0;  // Left out of the sum (clipping.h).
    // With a noised loss: the whole sample's clipped loss sum plus its noise; the same on every
    // rank, and covered by the DP guarantee.
    double noised_loss_sum = 0;
    // Time from the end of this rank's computation until every bucket's all-reduce finished: the
    // communication (and waiting for slower peers) not hidden behind computation.
    double allreduce_seconds = 0;
  };
  // Runs one step (above). All ranks must call it the same number of times. Errors: kUnavailable
  // from the reducer (a peer died); the parameters are then unchanged.
  absl::StatusOr<StepResult> RunStep();

  struct Evaluation {
    int64_t correct = 0;
    int64_t examples = 0;
  };
  // Accuracy counts on this rank's slice of the test split, of the weights' moving average when
  // ema_decay > 0, else of the current parameters.
  Evaluation EvaluateTestShard();

  uint64_t ParameterFingerprint() const { return models::Fingerprint(model_->parameters()); }
  // Copies of the current parameters.
  std::vector<at::Tensor> Parameters() const;

  // Returns the trainer's whole state (parameters, optimizer state, weight average, steps done) as
  // bytes. The Poisson sampling and the noise draw fresh OS randomness, so no random stream has a
  // position to save. Every rank holds the same state. Errors: kInternal.
  absl::StatusOr<std::string> Checkpoint() const;

  // Replaces the state with a Checkpoint() of the same job, possibly taken with another number of
  // workers. Errors: kDataLoss for unreadable bytes, a negative step count or a value that is not
  // finite; kFailedPrecondition for another model or optimizer. A refused checkpoint changes
  // nothing.
  absl::Status Restore(const std::string& checkpoint);
  int64_t steps_done() const { return steps_done_; }

 private:
  ShardTrainer(const TrainerOptions& options, std::shared_ptr<const Dataset> dataset,
               std::unique_ptr<Reducer> reducer, std::unique_ptr<models::Model> model,
               std::unique_ptr<Optimizer> optimizer);

  const TrainerOptions options_;
  const std::shared_ptr<const Dataset> dataset_;
  const std::unique_ptr<Reducer> reducer_;
  const std::unique_ptr<models::Model> model_;
  const std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<ParameterAverage> average_;  // Set when ema_decay > 0.
  // Set when the model has a fixed front: this rank's training rows and the test split through it.
  std::unique_ptr<FixedFrontCache> training_front_;
  std::unique_ptr<FixedFrontCache> test_front_;
  at::Generator augmentation_generator_;    // Seeded from OS randomness; need not be secret.
  at::Tensor flat_gradient_;                // All parameters' gradient sums, one buffer.
  std::vector<at::Tensor> gradient_views_;  // Per-parameter views into flat_gradient_.
  struct Bucket {
    int first_parameter = 0;
    int end_parameter = 0;  // One past the last.
    int64_t begin = 0;      // Its range of flat_gradient_.
    int64_t end = 0;
  };
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_parameter_;
  int64_t steps_done_ = 0;
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_TRAINER_H_
