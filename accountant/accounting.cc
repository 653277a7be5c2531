#include "accountant/accounting.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "accountant/gaussian.h"
#include "accountant/pld.h"
#include "accountant/rdp.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

absl::Status CheckMethodApplies(AccountingMethod method, double q) {
  if (method == AccountingMethod::kExact && q != 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("exact accounting needs full batch (sampling_rate 1), got sampling_rate ", q));
  }
  return absl::OkStatus();
}

// The smallest sigma whose PLD epsilon meets the target. RDP's sigma brackets it from above (PLD is
// never looser) and 0.85 of it usually from below (else the bracket widens); regula falsi with the
// Illinois modification in log(sigma), to relative precision 5e-4, then converges in a handful of
// PLD evaluations. The result is rounded up: its epsilon is at most the target.
absl::StatusOr<CalibratedNoise> CalibratePldNoise(double q, int64_t steps, double target_epsilon,
                                                  double delta) {
  DPFLEET_ASSIGN_OR_RETURN(const CalibratedNoise rdp,
                           CalibrateNoiseMultiplier(q, steps, target_epsilon, delta));
  auto gap_at = [&](double log_sigma) -> absl::StatusOr<double> {
    DPFLEET_ASSIGN_OR_RETURN(
        const PldResult result,
        PldEpsilon({.sampling_rate = q, .noise_multiplier = std::exp(log_sigma), .steps = steps},
                   delta));
    return result.epsilon - target_epsilon;
  };
  double hi = std::log(rdp.noise_multiplier);
  DPFLEET_ASSIGN_OR_RETURN(double gap_hi, gap_at(hi));
  // Discretisation left PLD looser here: RDP's sigma stands, and is reported as RDP's.
  if (gap_hi > 0) return rdp;
  double lo = hi + std::log(0.85);
  DPFLEET_ASSIGN_OR_RETURN(double gap_lo, gap_at(lo));
  while (gap_lo <= 0) {  // Even less noise meets the target: widen the bracket downwards.
    hi = lo;
    gap_hi = gap_lo;
    lo += std::log(0.5);
    DPFLEET_ASSIGN_OR_RETURN(gap_lo, gap_at(lo));
  }
  int side = 0;
  while (hi - lo > 5e-4) {
    double mid = (lo * gap_hi - hi * gap_lo) / (gap_hi - gap_lo);
    if (!(mid > lo && mid < hi)) mid = 0.5 * (lo + hi);
    DPFLEET_ASSIGN_OR_RETURN(const double gap_mid, gap_at(mid));
    if (gap_mid <= 0) {
      hi = mid;
      gap_hi = gap_mid;
      if (side == 1) gap_lo /= 2;
      side = 1;
    } else {
      lo = mid;
      gap_lo = gap_mid;
      if (side == -1) gap_hi /= 2;
      side = -1;
    }
  }
  DPFLEET_ASSIGN_OR_RETURN(const double gap, gap_at(hi));
  return CalibratedNoise{std::exp(hi), gap + target_epsilon, AccountingMethod::kPld};
}

}  // namespace

absl::StatusOr<AccountingMethod> ParseAccountingMethod(const std::string& name) {
  if (name == "auto" || name.empty()) return AccountingMethod::kAuto;
  if (name == "rdp") return AccountingMethod::kRdp;
  if (name == "pld") return AccountingMethod::kPld;
  if (name == "exact") return AccountingMethod::kExact;
  return absl::InvalidArgumentError(
      absl::StrCat("accountant must be auto, rdp, pld or exact, got '", name, "'"));
}

std::string AccountingMethodName(AccountingMethod method) {
  switch (method) {
    case AccountingMethod::kAuto:
      return "auto";
    case AccountingMethod::kRdp:
      return "rdp";
    case AccountingMethod::kPld:
      return "pld";
    case AccountingMethod::kExact:
      return "exact";
  }
  return "unknown";
}

AccountingMethod ResolveMethod(AccountingMethod method, double q) {
  if (method != AccountingMethod::kAuto) return method;
  return q == 1.0 ? AccountingMethod::kExact : AccountingMethod::kRdp;
}

absl::StatusOr<double> MechanismEpsilon(const SubsampledGaussian& mechanism, double delta,
                                        AccountingMethod method) {
  method = ResolveMethod(method, mechanism.sampling_rate);
  DPFLEET_RETURN_IF_ERROR(CheckMethodApplies(method, mechanism.sampling_rate));
  if (method == AccountingMethod::kExact) {
    return FullBatchEpsilon(mechanism.noise_multiplier, mechanism.steps, delta);
  }
  if (method == AccountingMethod::kPld) {
    DPFLEET_ASSIGN_OR_RETURN(const PldResult result, PldEpsilon(mechanism, delta));
    return result.epsilon;
  }
  DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder result, RdpEpsilon(mechanism, delta));
  return result.epsilon;
}

absl::StatusOr<CalibratedNoise> CalibrateNoise(double q, int64_t steps, double target_epsilon,
                                               double delta, AccountingMethod method) {
  method = ResolveMethod(method, q);
  DPFLEET_RETURN_IF_ERROR(CheckMethodApplies(method, q));
  if (method == AccountingMethod::kExact)
    return CalibrateFullBatchNoise(steps, target_epsilon, delta);
  if (method == AccountingMethod::kPld) return CalibratePldNoise(q, steps, target_epsilon, delta);
  return CalibrateNoiseMultiplier(q, steps, target_epsilon, delta);
}

}  // namespace dpfleet::accountant
