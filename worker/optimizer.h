#ifndef DPFLEET_WORKER_OPTIMIZER_H_
#define DPFLEET_WORKER_OPTIMIZER_H_

// Optimizers applied to the noised mean gradient. They only post-process a differentially private
// quantity, so they cost no privacy (post-processing, Dwork and Roth 2014, Proposition 2.1).

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::worker {

enum class OptimizerKind { kSgd, kAdam };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  double learning_rate = 0.1;
  double momentum = 0.0;      // SGD: heavy-ball momentum; 0 disables it.
  double weight_decay = 0.0;  // L2 penalty added to the gradient.
  double beta1 = 0.9;         // Adam.
  double beta2 = 0.999;       // Adam.
  double epsilon = 1e-8;      // Adam.
};

// Not thread-safe. Deterministic: the same parameters and gradients give the same bits on every worker.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates `parameters` in place from `gradients` (same shapes, same order).
  virtual void Step(std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& gradients) = 0;
};

// Returns the optimizer `options` describe. Errors: kInvalidArgument for a learning rate not finite
// and > 0, momentum outside [0, 1), negative weight decay, betas outside [0, 1), epsilon <= 0.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerOptions& options);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_OPTIMIZER_H_
