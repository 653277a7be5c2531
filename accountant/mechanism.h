#ifndef DPFLEET_ACCOUNTANT_MECHANISM_H_
#define DPFLEET_ACCOUNTANT_MECHANISM_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dpfleet::accountant {

// T steps of the Poisson-subsampled Gaussian mechanism, as run by DP-SGD: each step samples every
// example independently with probability `sampling_rate` (q), sums the examples' gradients clipped
// to L2 norm C, and adds N(0, (noise_multiplier * C)^2) noise to each coordinate. Neighbouring
// datasets differ by adding or removing one example, so the clipped sum has L2 sensitivity C. q = 1
// is the full-batch (unsampled) Gaussian mechanism.
struct SubsampledGaussian {
  double sampling_rate = 1.0;
  double noise_multiplier = 1.0;
  int64_t steps = 1;
};

enum class AccountingMethod {
  kAuto,   // Exact for full batch (q = 1), RDP otherwise (fast enough for every step).
  kRdp,    // rdp.h: Renyi DP of the subsampled Gaussian, any q.
  kPld,    // pld.h: privacy loss distributions, any q; the tightest, and slower.
  kExact,  // gaussian.h: exact, full batch only.
};

// Returns OK when q is in (0, 1], sigma is finite and > 0, and steps >= 0; otherwise
// kInvalidArgument naming the offending field and value.
absl::Status ValidateMechanism(const SubsampledGaussian& mechanism);

// Returns OK when delta is in (0, 1); otherwise kInvalidArgument naming it.
absl::Status ValidateDelta(double delta);

// Returns the noise multiplier of the one Gaussian mechanism that is exactly as private as
// releasing, from the same sample each step, the gradient sum (sensitivity C, noise multiplier
// `gradient`) together with a sum of per-example losses clipped to [0, L] (sensitivity L, noise
// multiplier `loss`, each noise std being its multiplier times its own sensitivity):
// (gradient^-2 + loss^-2)^(-1/2). Rescaling the loss coordinate by gradient C / (loss L) makes the
// noise isotropic with std gradient C and the joint sensitivity C sqrt(1 + gradient^2 / loss^2);
// their ratio is the result (equivalently, Gaussian DP composes as mu^2 = mu_1^2 + mu_2^2 with
// mu_i = 1 / sigma_i; Dong, Roth & Su 2022, Cor. 3.3). `loss` 0 (no loss released) returns
// `gradient`; `gradient` 0 returns 0.
double CombinedNoiseMultiplier(double gradient, double loss);

// Returns the gradient noise multiplier that CombinedNoiseMultiplier combines with `loss` into
// `combined`. Errors: kInvalidArgument unless loss > combined > 0 (the loss alone must be less
// private than the whole).
absl::StatusOr<double> GradientNoiseMultiplierFor(double combined, double loss);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_MECHANISM_H_
