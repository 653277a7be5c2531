#ifndef DPFLEET_ACCOUNTANT_MECHANISM_H_
#define DPFLEET_ACCOUNTANT_MECHANISM_H_

#include <cstdint>

#include "absl/status/status.h"

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

// Returns OK when q is in (0, 1], sigma is finite and > 0, and steps >= 0; otherwise
// kInvalidArgument naming the offending field and value.
absl::Status ValidateMechanism(const SubsampledGaussian& mechanism);

// Returns OK when delta is in (0, 1); otherwise kInvalidArgument naming it.
absl::Status ValidateDelta(double delta);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_MECHANISM_H_
