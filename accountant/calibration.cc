#include "accountant/calibration.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

constexpr double kMaxNoiseMultiplier = 1e6;
constexpr double kMinNoiseMultiplier = 1e-3;
constexpr double kRelativePrecision = 1e-6;

absl::Status ValidateEpsilon(const char* field, double epsilon) {
  if (!std::isfinite(epsilon) || epsilon <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be finite and > 0, got ", epsilon));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CalibratedNoise> CalibrateNoiseMultiplier(double q, int64_t steps,
                                                         double target_epsilon, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateEpsilon("target_epsilon", target_epsilon));
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  if (steps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("steps must be > 0, got ", steps));
  }
  auto epsilon_at = [&](double sigma) -> absl::StatusOr<double> {
    DPFLEET_ASSIGN_OR_RETURN(
        const EpsilonAndOrder result,
        RdpEpsilon({.sampling_rate = q, .noise_multiplier = sigma, .steps = steps}, delta));
    return result.epsilon;
  };
  // Bracket the answer: epsilon(lo) > target >= epsilon(hi).
  double hi = 1.0;
  DPFLEET_ASSIGN_OR_RETURN(double epsilon_hi, epsilon_at(hi));
  while (epsilon_hi > target_epsilon) {
    hi *= 2.0;
    if (hi > kMaxNoiseMultiplier) {
      return absl::NotFoundError(absl::StrCat(
          "no noise multiplier up to ", kMaxNoiseMultiplier, " reaches target_epsilon ",
          target_epsilon, " at delta ", delta, " for q ", q, " and ", steps, " steps"));
    }
    DPFLEET_ASSIGN_OR_RETURN(epsilon_hi, epsilon_at(hi));
  }
  double lo = hi / 2.0;
  DPFLEET_ASSIGN_OR_RETURN(double epsilon_lo, epsilon_at(lo));
  while (epsilon_lo <= target_epsilon) {
    hi = lo;
    epsilon_hi = epsilon_lo;
    lo /= 2.0;
    if (lo < kMinNoiseMultiplier) return CalibratedNoise{hi, epsilon_hi};
    DPFLEET_ASSIGN_OR_RETURN(epsilon_lo, epsilon_at(lo));
  }
  while (hi / lo - 1.0 > kRelativePrecision) {
    const double mid = std::sqrt(lo * hi);
    DPFLEET_ASSIGN_OR_RETURN(const double epsilon_mid, epsilon_at(mid));
    if (epsilon_mid <= target_epsilon) {
      hi = mid;
      epsilon_hi = epsilon_mid;
    } else {
      lo = mid;
    }
  }
  return CalibratedNoise{hi, epsilon_hi};
}

}  // namespace dpfleet::accountant
