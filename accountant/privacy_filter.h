#ifndef DPFLEET_ACCOUNTANT_PRIVACY_FILTER_H_
#define DPFLEET_ACCOUNTANT_PRIVACY_FILTER_H_

// Admission of jobs against a dataset's lifetime (epsilon, delta) budget when each job may be
// chosen after seeing the results of earlier ones (fully adaptive composition).
//
// Plain composition theorems need every mechanism's parameters fixed in advance. A privacy filter
// (Rogers, Roth, Ullman and Vadhan 2016) decides whether to admit the next mechanism from the
// parameters of those already admitted, and is valid even when they were chosen adaptively.
//
// dpfleet runs a Renyi filter (Feldman and Zrnic 2021, "Individual Privacy Accounting via a Renyi
// Filter", Theorem 3.1) at each of K orders alpha in FilterOrders() at once, and admits a mechanism
// while SOME order still has room: S(alpha) = sum_i rho_i(alpha) <= B(alpha), with
//   B(alpha) = epsilon - log((alpha - 1) / alpha) - (log(K / delta) - log(alpha)) / (alpha - 1),
// the conversion of Balle et al. (2020, Theorem 21) with delta split K ways.
// Why this is (epsilon, delta)-DP. Fix neighbours and let L be the privacy loss of the whole
// interaction. For each alpha, exp((alpha - 1)(L - S(alpha))) is a non-negative supermartingale
// (Feldman and Zrnic, proof of Theorem 3.1), so its expectation at the filter's stopping time is at
// most 1. The last admission leaves some order alpha* with S(alpha*) <= B(alpha*); split the
// outcomes by the smallest such order. Since (1 - e^(epsilon - L))_+ <= c(alpha) e^((alpha - 1)(L -
// epsilon)) with c(alpha) = ((alpha - 1) / alpha)^(alpha - 1) / alpha, each part contributes at
// most c(alpha) e^((alpha - 1)(B(alpha) - epsilon)) = delta / K to the hockey-stick divergence E[(1
// - e^(epsilon - L))_+], which is therefore at most delta. (Lecuyer 2021 builds multi-order RDP
// filters the same way.) The log(K) it costs is why K is kept small.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "accountant/rdp.h"

namespace dpfleet::accountant {

// The K orders of the filter, a subset of DefaultRdpOrders(): 1.5 ... 256.
const std::vector<double>& FilterOrders();

// Returns the smallest budget epsilon' such that the filter at (epsilon', delta) admits a set of
// mechanisms whose composed RDP curve is `admitted`: the minimum over alpha in FilterOrders() of
//   admitted(alpha) + log((alpha - 1) / alpha) + (log(K / delta) - log(alpha)) / (alpha - 1).
// A mechanism is admitted against budget epsilon exactly when FilterEpsilon(admitted + it) <=
// epsilon, so this is the level the ledger reports as admitted so far (not an odometer: only the
// filter's budget is a valid bound under adaptivity); 0 when nothing was admitted.
// Errors: kInvalidArgument for delta.
absl::StatusOr<double> FilterEpsilon(const RdpCurve& admitted, double delta);

// Returns the largest number of steps T >= 0 of the mechanism (q, sigma) that the filter at
// (epsilon_budget, delta) still admits after `admitted` (FilterEpsilon grows with T: a bisection).
// Errors: kInvalidArgument for q, sigma, delta or a budget not finite and > 0.
absl::StatusOr<int64_t> MaxStepsWithinFilter(const RdpCurve& admitted, double q, double sigma,
                                             double epsilon_budget, double delta);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_PRIVACY_FILTER_H_
