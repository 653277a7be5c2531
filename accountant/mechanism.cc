#include "accountant/mechanism.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dpfleet::accountant {

absl::Status ValidateMechanism(const SubsampledGaussian& mechanism) {
  const double q = mechanism.sampling_rate;
  if (!std::isfinite(q) || q <= 0.0 || q > 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("sampling_rate must be in (0, 1], got ", q));
  }
  const double sigma = mechanism.noise_multiplier;
  if (!std::isfinite(sigma) || sigma <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise_multiplier must be finite and > 0, got ", sigma));
  }
  if (mechanism.steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat("steps must be >= 0, got ", mechanism.steps));
  }
  return absl::OkStatus();
}

absl::Status ValidateDelta(double delta) {
  if (!std::isfinite(delta) || delta <= 0.0 || delta >= 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("delta must be in (0, 1), got ", delta));
  }
  return absl::OkStatus();
}

double CombinedNoiseMultiplier(double gradient, double loss) {
  if (loss <= 0) return gradient;
  if (gradient <= 0) return 0;
  return 1.0 / std::sqrt(1.0 / (gradient * gradient) + 1.0 / (loss * loss));
}

absl::StatusOr<double> GradientNoiseMultiplierFor(double combined, double loss) {
  if (!(combined > 0) || !(loss > combined) || !std::isfinite(loss)) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss_noise_multiplier must exceed the job's noise multiplier ", combined,
                     ", got ", loss, ": the noised loss would use up the whole privacy budget"));
  }
  return 1.0 / std::sqrt(1.0 / (combined * combined) - 1.0 / (loss * loss));
}

}  // namespace dpfleet::accountant
