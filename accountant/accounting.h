#ifndef DPFLEET_ACCOUNTANT_ACCOUNTING_H_
#define DPFLEET_ACCOUNTANT_ACCOUNTING_H_

// One entry point to the accountants: epsilon of a mechanism and noise calibration by a chosen
// method, or by the tightest one available for the mechanism.

#include <string>

#include "absl/status/statusor.h"
#include "accountant/calibration.h"
#include "accountant/mechanism.h"

namespace dpfleet::accountant {

// Parses "auto", "rdp", "pld" or "exact". Errors: kInvalidArgument naming the value.
absl::StatusOr<AccountingMethod> ParseAccountingMethod(const std::string& name);
std::string AccountingMethodName(AccountingMethod method);

// Returns the method kAuto stands for with sampling rate q; other methods unchanged.
AccountingMethod ResolveMethod(AccountingMethod method, double q);

// Returns epsilon at `delta` of `mechanism` by `method`. Errors: those of the method's library;
// kInvalidArgument for kExact with q < 1.
absl::StatusOr<double> MechanismEpsilon(const SubsampledGaussian& mechanism, double delta,
                                        AccountingMethod method);

// Returns the smallest noise multiplier meeting (target_epsilon, delta) for `steps` steps at rate
// q, by `method`. Errors as MechanismEpsilon, and those of the calibration.
absl::StatusOr<CalibratedNoise> CalibrateNoise(double q, int64_t steps, double target_epsilon,
                                               double delta, AccountingMethod method);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_ACCOUNTING_H_
