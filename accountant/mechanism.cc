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

}  // namespace dpfleet::accountant
