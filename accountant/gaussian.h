#ifndef DPFLEET_ACCOUNTANT_GAUSSIAN_H_
#define DPFLEET_ACCOUNTANT_GAUSSIAN_H_

// Exact accounting for full-batch training (sampling rate q = 1): T steps of the Gaussian mechanism
// with sensitivity C and noise sigma * C compose to exactly one Gaussian mechanism with
// mu = sqrt(T) / sigma (mu-Gaussian DP; Dong, Roth and Su 2019, Corollary 3.3), whose (epsilon,
// delta) curve is known in closed form, with no slack at all.

#include <cstdint>

#include "absl/status/statusor.h"
#include "accountant/calibration.h"

namespace dpfleet::accountant {

// Returns delta(epsilon) = Phi(-epsilon/mu + mu/2) - e^epsilon Phi(-epsilon/mu - mu/2), the exact
// privacy profile of the Gaussian mechanism with mu = sensitivity / std (Balle and Wang 2018,
// "Improving the Gaussian Mechanism for Differential Privacy", Theorem 8).
// Errors: kInvalidArgument for mu not finite and > 0, or epsilon negative or not finite.
absl::StatusOr<double> GaussianDelta(double mu, double epsilon);

// Returns the smallest epsilon >= 0 (to absolute precision 1e-9, rounded up) with
// GaussianDelta(mu, epsilon) <= delta. Errors: kInvalidArgument for mu or delta outside (0, 1).
absl::StatusOr<double> GaussianEpsilon(double mu, double delta);

// Returns the exact epsilon of `steps` full-batch steps at noise multiplier sigma: GaussianEpsilon
// with mu = sqrt(steps) / sigma. Errors: kInvalidArgument for sigma, steps <= 0 or delta.
absl::StatusOr<double> FullBatchEpsilon(double sigma, int64_t steps, double delta);

// Returns the smallest sigma (relative precision 1e-9, rounded up) for which `steps` full-batch
// steps are (target_epsilon, delta)-DP, found through the largest admissible mu. Errors:
// kInvalidArgument.
absl::StatusOr<CalibratedNoise> CalibrateFullBatchNoise(int64_t steps, double target_epsilon,
                                                        double delta);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_GAUSSIAN_H_
