#include "accountant/gaussian.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "accountant/mechanism.h"
#include "accountant/numerics.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

absl::Status ValidateMu(double mu) {
  if (!std::isfinite(mu) || mu <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("mu must be finite and > 0, got ", mu));
  }
  return absl::OkStatus();
}

// delta(epsilon) without validation; the second term in log space so e^epsilon cannot overflow.
double Delta(double mu, double epsilon) {
  const double first = NormalCdf(-epsilon / mu + mu / 2);
  const double second = std::exp(epsilon + LogNormalCdf(-epsilon / mu - mu / 2));
  return std::max(0.0, first - second);
}

}  // namespace

absl::StatusOr<double> GaussianDelta(double mu, double epsilon) {
  DPFLEET_RETURN_IF_ERROR(ValidateMu(mu));
  if (!std::isfinite(epsilon) || epsilon < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be finite and >= 0, got ", epsilon));
  }
  return Delta(mu, epsilon);
}

absl::StatusOr<double> GaussianEpsilon(double mu, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateMu(mu));
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  if (Delta(mu, 0.0) <= delta) return 0.0;
  // delta(epsilon) decreases in epsilon: bracket, then bisect keeping delta(hi) <= delta.
  double lo = 0.0;
  double hi = 1.0;
  while (Delta(mu, hi) > delta) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) return absl::InternalError(absl::StrCat("no epsilon found for mu ", mu));
  }
  while (hi - lo > 1e-9) {
    const double mid = 0.5 * (lo + hi);
    (Delta(mu, mid) <= delta ? hi : lo) = mid;
  }
  return hi;
}

absl::StatusOr<double> FullBatchEpsilon(double sigma, int64_t steps, double delta) {
  DPFLEET_RETURN_IF_ERROR(
      ValidateMechanism({.sampling_rate = 1.0, .noise_multiplier = sigma, .steps = steps}));
  if (steps == 0) return 0.0;
  return GaussianEpsilon(std::sqrt(static_cast<double>(steps)) / sigma, delta);
}

absl::StatusOr<CalibratedNoise> CalibrateFullBatchNoise(int64_t steps, double target_epsilon,
                                                        double delta) {
  if (!std::isfinite(target_epsilon) || target_epsilon <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_epsilon must be finite and > 0, got ", target_epsilon));
  }
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  if (steps <= 0) return absl::InvalidArgumentError(absl::StrCat("steps must be > 0, got ", steps));
  // The largest mu with delta(target_epsilon) <= delta; delta(epsilon) increases with mu.
  double lo = 0.0;  // Admissible (mu -> 0 is perfectly private).
  double hi = 1.0;
  while (Delta(hi, target_epsilon) <= delta) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1e-12 * hi) {
    const double mid = 0.5 * (lo + hi);
    (Delta(mid, target_epsilon) <= delta ? lo : hi) = mid;
  }
  const double sigma = std::sqrt(static_cast<double>(steps)) / lo;
  DPFLEET_ASSIGN_OR_RETURN(const double epsilon, FullBatchEpsilon(sigma, steps, delta));
  return CalibratedNoise{sigma, epsilon, AccountingMethod::kExact};
}

}  // namespace dpfleet::accountant
