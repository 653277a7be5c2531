#include "accountant/calibration.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

constexpr double kMaxNoiseMultiplier = 1e6;
constexpr double kMinNoiseMultiplier = 1e-3;
constexpr double kRelativePrecision = 1e-6;
constexpr int64_t kMaxSteps = int64_t{1} << 40;

absl::Status ValidateEpsilon(const char* field, double epsilon) {
  if (!std::isfinite(epsilon) || epsilon <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be finite and > 0, got ", epsilon));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> TotalEpsilon(const RdpCurve& spent, const SubsampledGaussian& mechanism,
                                    double delta) {
  RdpCurve total = spent;
  DPFLEET_RETURN_IF_ERROR(total.Compose(mechanism));
  DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder result, total.Epsilon(delta));
  return result.epsilon;
}

}  // namespace

absl::StatusOr<CalibratedNoise> CalibrateNoiseMultiplier(double q, int64_t steps,
                                                         double target_epsilon, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateEpsilon("target_epsilon", target_epsilon));
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  if (steps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("steps must be > 0, got ", steps));
  }
  const RdpCurve nothing_spent;
  auto epsilon_at = [&](double sigma) {
    return TotalEpsilon(nothing_spent, {.sampling_rate = q, .noise_multiplier = sigma, .steps = steps},
                        delta);
  };
  // Bracket the answer: epsilon(lo) > target >= epsilon(hi).
  double hi = 1.0;
  DPFLEET_ASSIGN_OR_RETURN(double epsilon_hi, epsilon_at(hi));
  while (epsilon_hi > target_epsilon) {
    hi *= 2.0;
    if (hi > kMaxNoiseMultiplier) {
      return absl::NotFoundError(absl::StrCat("no noise multiplier up to ", kMaxNoiseMultiplier,
                                              " reaches target_epsilon ", target_epsilon, " at delta ",
                                              delta, " for q ", q, " and ", steps, " steps"));
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

absl::StatusOr<int64_t> MaxStepsWithinBudget(const RdpCurve& spent, double q, double sigma,
                                             double epsilon_budget, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateEpsilon("epsilon_budget", epsilon_budget));
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  auto fits = [&](int64_t steps) -> absl::StatusOr<bool> {
    DPFLEET_ASSIGN_OR_RETURN(
        const double epsilon,
        TotalEpsilon(spent, {.sampling_rate = q, .noise_multiplier = sigma, .steps = steps}, delta));
    return epsilon <= epsilon_budget;
  };
  DPFLEET_ASSIGN_OR_RETURN(const bool any_fits, fits(0));
  if (!any_fits) return 0;
  // Invariant: fits(lo) and (hi == kMaxSteps or !fits(hi)).
  int64_t lo = 0;
  int64_t hi = 1;
  while (hi < kMaxSteps) {
    DPFLEET_ASSIGN_OR_RETURN(const bool hi_fits, fits(hi));
    if (!hi_fits) break;
    lo = hi;
    hi *= 2;
  }
  if (hi >= kMaxSteps) return kMaxSteps;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    DPFLEET_ASSIGN_OR_RETURN(const bool mid_fits, fits(mid));
    (mid_fits ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace dpfleet::accountant
