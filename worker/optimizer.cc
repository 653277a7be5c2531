#include "worker/optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dpfleet::worker {
namespace {

std::vector<at::Tensor> Clone(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> copies;
  for (const at::Tensor& t : tensors) copies.push_back(t.clone());
  return copies;
}

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const OptimizerOptions& options) : options_(options) {}

  void Step(std::vector<at::Tensor>& parameters,
            const std::vector<at::Tensor>& gradients) override {
    at::NoGradGuard no_grad;
    const double learning_rate = LearningRateAt(options_, steps_++);
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
      parameters[i].sub_(learning_rate * direction);
    }
  }

  OptimizerState Save() const override { return {steps_, Clone(velocity_)}; }

  absl::Status Load(const OptimizerState& state) override {
    steps_ = state.steps;
    velocity_ = Clone(state.tensors);
    return absl::OkStatus();
  }

 private:
  const OptimizerOptions options_;
  std::vector<at::Tensor> velocity_;
  int64_t steps_ = 0;
};

// Adam (Kingma and Ba 2015, Algorithm 1) and LAMB (You et al. 2020, Algorithm 2), which shares
// Adam's moments.
class AdaptiveMoments final : public Optimizer {
 public:
  explicit AdaptiveMoments(const OptimizerOptions& options) : options_(options) {}

  void Step(std::vector<at::Tensor>& parameters,
            const std::vector<at::Tensor>& gradients) override {
    at::NoGradGuard no_grad;
    const double learning_rate = LearningRateAt(options_, steps_++);
    if (first_moment_.empty()) {
      for (const at::Tensor& p : parameters) {
        first_moment_.push_back(at::zeros_like(p));
        second_moment_.push_back(at::zeros_like(p));
      }
    }
    const double correction1 = 1 - std::pow(options_.beta1, static_cast<double>(steps_));
    const double correction2 = 1 - std::pow(options_.beta2, static_cast<double>(steps_));
    const bool lamb = options_.kind == OptimizerKind::kLamb;
    for (size_t i = 0; i < parameters.size(); ++i) {
      at::Tensor g = gradients[i];
      if (!lamb && options_.weight_decay > 0) g = g + options_.weight_decay * parameters[i];
      first_moment_[i].mul_(options_.beta1).add_(g, 1 - options_.beta1);
      second_moment_[i].mul_(options_.beta2).addcmul_(g, g, 1 - options_.beta2);
      at::Tensor update = (first_moment_[i] / correction1) /
                          (second_moment_[i] / correction2).sqrt_().add_(options_.epsilon);
      double scale = learning_rate;
      if (lamb) {
        if (options_.weight_decay > 0) update.add_(parameters[i], options_.weight_decay);
        const double weight_norm = parameters[i].norm().item<double>();
        const double update_norm = update.norm().item<double>();
        if (weight_norm > 0 && update_norm > 0) scale *= weight_norm / update_norm;
      }
      parameters[i].sub_(update, scale);
    }
  }

  OptimizerState Save() const override {
    OptimizerState state{steps_, Clone(first_moment_)};
    for (const at::Tensor& t : second_moment_) state.tensors.push_back(t.clone());
    return state;
  }

  absl::Status Load(const OptimizerState& state) override {
    if (state.tensors.size() % 2 != 0) {
      return absl::InvalidArgumentError("Adam/LAMB state needs first and second moments in pairs");
    }
    const size_t half = state.tensors.size() / 2;
    steps_ = state.steps;
    first_moment_ = Clone({state.tensors.begin(), state.tensors.begin() + half});
    second_moment_ = Clone({state.tensors.begin() + half, state.tensors.end()});
    return absl::OkStatus();
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

double LearningRateAt(const OptimizerOptions& options, int64_t step) {
  double rate = options.learning_rate;
  if (step < options.warmup_steps) {
    return rate * static_cast<double>(step + 1) / static_cast<double>(options.warmup_steps);
  }
  if (options.schedule == LearningRateSchedule::kCosine) {
    const double progress = static_cast<double>(step - options.warmup_steps) /
                            static_cast<double>(options.total_steps - options.warmup_steps);
    rate *= 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
  }
  return rate;
}

absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerOptions& options) {
  if (!std::isfinite(options.learning_rate) || options.learning_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.learning_rate must be finite and > 0, got ", options.learning_rate));
  }
  if (absl::Status s = CheckInRange("weight_decay", options.weight_decay, 0, HUGE_VAL); !s.ok())
    return s;
  if (options.warmup_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.warmup_steps must be >= 0, got ", options.warmup_steps));
  }
  if (options.schedule == LearningRateSchedule::kCosine &&
      options.total_steps <= options.warmup_steps) {
    return absl::InvalidArgumentError(absl::StrCat("a cosine schedule needs total_steps (",
                                                   options.total_steps, ") > warmup_steps (",
                                                   options.warmup_steps, ")"));
  }
  switch (options.kind) {
    case OptimizerKind::kSgd:
      if (absl::Status s = CheckInRange("momentum", options.momentum, 0, 1); !s.ok()) return s;
      return std::unique_ptr<Optimizer>(new Sgd(options));
    case OptimizerKind::kAdam:
    case OptimizerKind::kLamb:
      if (absl::Status s = CheckInRange("beta1", options.beta1, 0, 1); !s.ok()) return s;
      if (absl::Status s = CheckInRange("beta2", options.beta2, 0, 1); !s.ok()) return s;
      if (!(options.epsilon > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer.epsilon must be > 0, got ", options.epsilon));
      }
      return std::unique_ptr<Optimizer>(new AdaptiveMoments(options));
  }
  return absl::InvalidArgumentError("unknown optimizer kind");
}

ParameterAverage::ParameterAverage(const std::vector<at::Tensor>& parameters, double decay)
    : decay_(decay) {
  for (const at::Tensor& p : parameters) average_.push_back(p.detach().clone());
}

void ParameterAverage::Update(const std::vector<at::Tensor>& parameters) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i)
    average_[i].mul_(decay_).add_(parameters[i], 1 - decay_);
}

}  // namespace dpfleet::worker
