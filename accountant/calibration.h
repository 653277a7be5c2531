#ifndef DPFLEET_ACCOUNTANT_CALIBRATION_H_
#define DPFLEET_ACCOUNTANT_CALIBRATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "accountant/rdp.h"

namespace dpfleet::accountant {

struct CalibratedNoise {
  double noise_multiplier;
  double epsilon;  // Epsilon achieved at that noise, by `method`; never above the target.
  AccountingMethod method = AccountingMethod::kRdp;  // What computed `epsilon` (never kAuto).
};

// Returns the smallest noise multiplier sigma (to relative precision 1e-6, rounded up) such that
// `steps` steps of the Poisson-subsampled Gaussian at rate q are (target_epsilon, delta)-DP under
// RDP accounting (rdp.h). Epsilon decreases monotonically in sigma, so this is a bisection in
// log(sigma). Errors: kInvalidArgument for q, steps <= 0, delta, or target_epsilon not finite and >
// 0; kNotFound when even sigma = 1e6 cannot reach the target.
absl::StatusOr<CalibratedNoise> CalibrateNoiseMultiplier(double q, int64_t steps,
                                                         double target_epsilon, double delta);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_CALIBRATION_H_
