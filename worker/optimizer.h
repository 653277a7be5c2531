#ifndef DPFLEET_WORKER_OPTIMIZER_H_
#define DPFLEET_WORKER_OPTIMIZER_H_

// Optimizers applied to the noised mean gradient. They only post-process a differentially private
// quantity, so they cost no privacy (post-processing, Dwork and Roth 2014, Proposition 2.1).

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::worker {

enum class OptimizerKind {
  kSgd,   // Heavy-ball SGD; weight decay added to the gradient.
  kAdam,  // Adam (Kingma and Ba 2015) with bias correction; weight decay added to the gradient.
  kLamb,  // LAMB (You et al. 2020, Algorithm 2): Adam's update plus decoupled weight decay, scaled
          // per parameter tensor by the trust ratio ||w|| / ||update|| (1 when either norm is 0).
};

enum class LearningRateSchedule {
  kConstant,
  kCosine,  // Cosine decay from the base rate to 0 at total_steps (Loshchilov and Hutter 2017).
};

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  double learning_rate = 0.1;  // Base rate.
  double momentum = 0.0;       // SGD: heavy-ball momentum; 0 disables it.
  double weight_decay = 0.0;
  double beta1 = 0.9;     // Adam, LAMB.
  double beta2 = 0.999;   // Adam, LAMB.
  double epsilon = 1e-8;  // Adam, LAMB.
  LearningRateSchedule schedule = LearningRateSchedule::kConstant;
  // Linear warm-up from base / warmup_steps to the base rate over the first warmup_steps steps.
  int64_t warmup_steps = 0;
  // Length of the run, for the cosine schedule.
  int64_t total_steps = 0;
};

// Returns the learning rate of 0-based step `step` under `options`' schedule.
double LearningRateAt(const OptimizerOptions& options, int64_t step);

// Everything an optimizer carries from step to step, for checkpoints.
struct OptimizerState {
  int64_t steps = 0;
  std::vector<at::Tensor> tensors;  // Momenta, in a fixed order; empty before the first step.
};

// Not thread-safe. Deterministic: the same parameters and gradients give the same bits on every
// worker.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Takes the next step: updates `parameters` in place from `gradients` (same shapes, same order).
  virtual void Step(std::vector<at::Tensor>& parameters,
                    const std::vector<at::Tensor>& gradients) = 0;

  // Returns copies of the optimizer's state.
  virtual OptimizerState Save() const = 0;
  // Replaces the state with one from Save() of the same kind of optimizer. Errors: kInvalidArgument
  // when the number of tensors does not match.
  virtual absl::Status Load(const OptimizerState& state) = 0;
};

// Returns the optimizer `options` describe. Errors: kInvalidArgument naming the field for a
// learning rate not finite and > 0, momentum outside [0, 1), negative weight decay, betas outside
// [0, 1), epsilon <= 0, negative warm-up, or a cosine schedule without total_steps > warmup_steps.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerOptions& options);

// An exponential moving average of parameters, ema <- decay ema + (1 - decay) w after every step
// (Polyak averaging; De et al. 2022 evaluate DP models with it). Not thread-safe.
class ParameterAverage {
 public:
  // Starts from a copy of `parameters`. decay in [0, 1).
  ParameterAverage(const std::vector<at::Tensor>& parameters, double decay);
  void Update(const std::vector<at::Tensor>& parameters);
  // Replaces the average (from a checkpoint).
  void Reset(std::vector<at::Tensor> average) { average_ = std::move(average); }
  const std::vector<at::Tensor>& average() const { return average_; }

 private:
  double decay_;
  std::vector<at::Tensor> average_;
};

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_OPTIMIZER_H_
