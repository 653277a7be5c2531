#include "worker/optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dpfleet::worker {
namespace {

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const OptimizerOptions& options) : options_(options) {}

  void Step(std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& gradients) override {
    at::NoGradGuard no_grad;
    if (velocity_.empty() && options_.momentum > 0) {
      for (const at::Tensor& p : parameters) velocity_.push_back(at::zeros_like(p));
    }
    for (size_t i = 0; i < parameters.size(); ++i) {
      at::Tensor direction = gradients[i];
      if (options_.weight_decay > 0) direction = direction + options_.weight_decay * parameters[i];
      if (options_.momentum > 0) {
        velocity_[i].mul_(options_.momentum).add_(direction);
        direction = velocity_[i];
      }
      parameters[i].sub_(options_.learning_rate * direction);
    }
  }

 private:
  const OptimizerOptions options_;
  std::vector<at::Tensor> velocity_;
};

// Adam (Kingma and Ba 2015, Algorithm 1) with bias correction.
class Adam final : public Optimizer {
 public:
  explicit Adam(const OptimizerOptions& options) : options_(options) {}

  void Step(std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& gradients) override {
    at::NoGradGuard no_grad;
    if (first_moment_.empty()) {
      for (const at::Tensor& p : parameters) {
        first_moment_.push_back(at::zeros_like(p));
        second_moment_.push_back(at::zeros_like(p));
      }
    }
    ++steps_;
    const double correction1 = 1 - std::pow(options_.beta1, steps_);
    const double correction2 = 1 - std::pow(options_.beta2, steps_);
    for (size_t i = 0; i < parameters.size(); ++i) {
      at::Tensor g = gradients[i];
      if (options_.weight_decay > 0) g = g + options_.weight_decay * parameters[i];
      first_moment_[i].mul_(options_.beta1).add_(g, 1 - options_.beta1);
      second_moment_[i].mul_(options_.beta2).addcmul_(g, g, 1 - options_.beta2);
      const at::Tensor denominator =
          (second_moment_[i] / correction2).sqrt_().add_(options_.epsilon);
      parameters[i].addcdiv_(first_moment_[i], denominator, -options_.learning_rate / correction1);
    }
  }

 private:
  const OptimizerOptions options_;
  std::vector<at::Tensor> first_moment_;
  std::vector<at::Tensor> second_moment_;
  int64_t steps_ = 0;
};

absl::Status CheckInRange(const char* field, double value, double lo, double hi) {
  if (!std::isfinite(value) || value < lo || value >= hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.", field, " must be in [", lo, ", ", hi, "), got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerOptions& options) {
  if (!std::isfinite(options.learning_rate) || options.learning_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.learning_rate must be finite and > 0, got ", options.learning_rate));
  }
  if (absl::Status s = CheckInRange("weight_decay", options.weight_decay, 0, HUGE_VAL); !s.ok()) return s;
  switch (options.kind) {
    case OptimizerKind::kSgd:
      if (absl::Status s = CheckInRange("momentum", options.momentum, 0, 1); !s.ok()) return s;
      return std::unique_ptr<Optimizer>(new Sgd(options));
    case OptimizerKind::kAdam:
      if (absl::Status s = CheckInRange("beta1", options.beta1, 0, 1); !s.ok()) return s;
      if (absl::Status s = CheckInRange("beta2", options.beta2, 0, 1); !s.ok()) return s;
      if (!(options.epsilon > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer.epsilon must be > 0, got ", options.epsilon));
      }
      return std::unique_ptr<Optimizer>(new Adam(options));
  }
  return absl::InvalidArgumentError("unknown optimizer kind");
}

}  // namespace dpfleet::worker
