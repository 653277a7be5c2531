#include "coordinator/job_plan.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "models/model_names.h"

namespace dpfleet::coordinator {
namespace {

// Upper bound on planned steps: far beyond any real job, small enough to keep step counts exact.
constexpr int64_t kMaxSteps = int64_t{1} << 32;

bool PositiveFinite(double x) { return std::isfinite(x) && x > 0; }

absl::Status Invalid(const std::string& field, const std::string& requirement, double value) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be ", requirement, ", got ", value));
}

absl::Status ValidateOptimizer(const v1::OptimizerSpec& optimizer) {
  if (optimizer.type() == v1::OPTIMIZER_TYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError("optimizer.type is required (DP_SGD, DP_ADAM or DP_LAMB)");
  }
  if (!PositiveFinite(optimizer.learning_rate())) {
    return Invalid("optimizer.learning_rate", "finite and > 0", optimizer.learning_rate());
  }
  if (!(optimizer.momentum() >= 0 && optimizer.momentum() < 1)) {
    return Invalid("optimizer.momentum", "in [0, 1)", optimizer.momentum());
  }
  if (!(optimizer.weight_decay() >= 0 && std::isfinite(optimizer.weight_decay()))) {
    return Invalid("optimizer.weight_decay", "finite and >= 0", optimizer.weight_decay());
  }
  for (const auto& [name, beta] : {std::pair{"optimizer.beta1", optimizer.beta1()},
                                   std::pair{"optimizer.beta2", optimizer.beta2()}}) {
    if (!(beta >= 0 && beta < 1)) return Invalid(name, "in [0, 1) (0: default)", beta);
  }
  if (!(optimizer.epsilon() >= 0 && std::isfinite(optimizer.epsilon()))) {
    return Invalid("optimizer.epsilon", "finite and >= 0 (0: default)", optimizer.epsilon());
  }
  if (optimizer.warmup_steps() < 0)
    return Invalid("optimizer.warmup_steps", ">= 0", optimizer.warmup_steps());
  if (!(optimizer.ema_decay() >= 0 && optimizer.ema_decay() < 1)) {
    return Invalid("optimizer.ema_decay", "in [0, 1) (0: off)", optimizer.ema_decay());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  if (spec.dataset().empty()) return absl::InvalidArgumentError("dataset is required");
  if (!models::IsKnownModel(spec.model())) {
    return absl::InvalidArgumentError(absl::StrCat("model '", spec.model(), "' is unknown"));
  }
  if (absl::Status optimizer = ValidateOptimizer(spec.optimizer()); !optimizer.ok())
    return optimizer;
  switch (spec.batching_case()) {
    case v1::JobSpec::kSamplingRate:
      if (!(std::isfinite(spec.sampling_rate()) && spec.sampling_rate() > 0 &&
            spec.sampling_rate() <= 1)) {
        return Invalid("sampling_rate", "in (0, 1]", spec.sampling_rate());
      }
      break;
    case v1::JobSpec::kExpectedBatchSize:
      if (spec.expected_batch_size() <= 0) {
        return Invalid("expected_batch_size", "> 0", spec.expected_batch_size());
      }
      break;
    case v1::JobSpec::kFullBatch:
      if (!spec.full_batch())
        return absl::InvalidArgumentError("full_batch, when set, must be true");
      break;
    default:
      return absl::InvalidArgumentError(
          "one of sampling_rate, expected_batch_size or full_batch is required");
  }
  switch (spec.duration_case()) {
    case v1::JobSpec::kSteps:
      if (spec.steps() <= 0 || spec.steps() > kMaxSteps) {
        return Invalid("steps", absl::StrCat("in [1, ", kMaxSteps, "]"), spec.steps());
      }
      break;
    case v1::JobSpec::kEpochs:
      if (!PositiveFinite(spec.epochs())) return Invalid("epochs", "finite and > 0", spec.epochs());
      break;
    default:
      return absl::InvalidArgumentError("one of steps or epochs is required");
  }
  if (!PositiveFinite(spec.clip_norm()))
    return Invalid("clip_norm", "finite and > 0", spec.clip_norm());
  if (spec.low_memory_clipping() && spec.clipping_mode() == v1::CLIPPING_PER_LAYER) {
    return absl::InvalidArgumentError(
        "low_memory_clipping works with flat clipping only, not clipping_mode per-layer");
  }
  switch (spec.privacy_case()) {
    case v1::JobSpec::kNoiseMultiplier:
      if (!PositiveFinite(spec.noise_multiplier())) {
        return Invalid("noise_multiplier", "finite and > 0", spec.noise_multiplier());
      }
      break;
    case v1::JobSpec::kTargetEpsilon:
      if (!PositiveFinite(spec.target_epsilon())) {
        return Invalid("target_epsilon", "finite and > 0", spec.target_epsilon());
      }
      break;
    default:
      return absl::InvalidArgumentError("one of noise_multiplier or target_epsilon is required");
  }
  if (spec.loss_noise_multiplier() != 0) {
    if (!PositiveFinite(spec.loss_noise_multiplier())) {
      return Invalid("loss_noise_multiplier", "finite and > 0, or 0 (no noised loss)",
                     spec.loss_noise_multiplier());
    }
    if (!PositiveFinite(spec.loss_clip())) {
      return Invalid("loss_clip", "finite and > 0 with a loss_noise_multiplier", spec.loss_clip());
    }
  }
  if (!(std::isfinite(spec.delta()) && spec.delta() > 0 && spec.delta() < 1)) {
    return Invalid("delta", "in (0, 1)", spec.delta());
  }
  if (spec.num_workers() < 1) return Invalid("num_workers", ">= 1", spec.num_workers());
  if (spec.micro_batch_size() < 0)
    return Invalid("micro_batch_size", ">= 0", spec.micro_batch_size());
  if (spec.evaluate_every_steps() < 0) {
    return Invalid("evaluate_every_steps", ">= 0 (0: only at the end)",
                   spec.evaluate_every_steps());
  }
  const v1::Augmentation& augmentation = spec.augmentation();
  if (augmentation.views() < 0 || augmentation.views() > 64) {
    return Invalid("augmentation.views", "in [1, 64] (0: none)", augmentation.views());
  }
  if (augmentation.crop_padding() < 0) {
    return Invalid("augmentation.crop_padding", ">= 0", augmentation.crop_padding());
  }
  if (augmentation.views() > 1 && augmentation.crop_padding() == 0 &&
      !augmentation.horizontal_flip()) {
    return absl::InvalidArgumentError(
        "augmentation.views > 1 needs a crop_padding or horizontal_flip: the views would all be "
        "the same image");
  }
  return absl::OkStatus();
}

double AccountedNoiseMultiplier(const v1::Job& job) {
  return job.accounted_noise_multiplier() > 0 ? job.accounted_noise_multiplier()
                                              : job.noise_multiplier();
}

absl::StatusOr<JobPlan> PlanJob(const v1::JobSpec& spec, int64_t dataset_size) {
  if (dataset_size <= 0) {
    return absl::FailedPreconditionError(absl::StrCat("dataset '", spec.dataset(), "' is empty"));
  }
  JobPlan plan;
  switch (spec.batching_case()) {
    case v1::JobSpec::kSamplingRate:
      plan.sampling_rate = spec.sampling_rate();
      break;
    case v1::JobSpec::kExpectedBatchSize:
      if (spec.expected_batch_size() > dataset_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("expected_batch_size ", spec.expected_batch_size(),
                         " exceeds the dataset's ", dataset_size, " examples"));
      }
      plan.sampling_rate = static_cast<double>(spec.expected_batch_size()) / dataset_size;
      break;
    default:
      plan.sampling_rate = 1.0;
  }
  if (spec.duration_case() == v1::JobSpec::kSteps) {
    plan.steps = spec.steps();
  } else {
    const double steps = std::ceil(spec.epochs() / plan.sampling_rate);
    if (steps > kMaxSteps) return Invalid("epochs", "small enough for 2^32 steps", spec.epochs());
    plan.steps = static_cast<int64_t>(steps);
  }
  if (spec.optimizer().schedule() == v1::SCHEDULE_COSINE &&
      plan.steps <= spec.optimizer().warmup_steps()) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.warmup_steps (", spec.optimizer().warmup_steps(),
                     ") must be below the job's ", plan.steps, " steps for a cosine schedule"));
  }
  return plan;
}

}  // namespace dpfleet::coordinator
