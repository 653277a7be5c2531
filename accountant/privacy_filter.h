#ifndef DPFLEET_ACCOUNTANT_PRIVACY_FILTER_H_
#define DPFLEET_ACCOUNTANT_PRIVACY_FILTER_H_

// Admission of jobs against a dataset's lifetime (epsilon, delta) budget when each job may be
// chosen after seeing the results of earlier ones (fully adaptive composition).
//
// Plain composition theorems need every mechanism's parameters fixed in advance. A privacy filter
// (Rogers, Roth, Ullman and Vadhan 2016) decides whether to admit the next mechanism from the
// parameters of those already admitted, and is valid even when they were chosen adaptively.
//
// A dataset's PrivacyFilter is a list of parts, each a filter valid on its own at its share
// delta_j of delta (sum_j delta_j <= delta), and admits a mechanism while SOME part still admits
// everything admitted so far, the new mechanism included. The parts:
//  - Renyi at order alpha (Feldman and Zrnic 2021, "Individual Privacy Accounting via a Renyi
//    Filter", Theorem 3.1): sum_i rho_i(alpha) <= epsilon - log((alpha - 1) / alpha)
//    - (log(1 / delta_j) - log(alpha)) / (alpha - 1), the conversion of Balle et al. (2020,
//    Theorem 21). Each rho_i is the mechanism's RDP curve (rdp.h), subsampling credited.
//  - Gaussian (Smith and Thakurta 2022, "Fully Adaptive Composition for Gaussian Differential
//    Privacy", their main theorem: GDP filters with the nonadaptive parameters): sum_i mu_i^2 <=
//    mu^2, where the mu-Gaussian mechanism is exactly (epsilon, delta_j)-DP (gaussian.h). T steps
//    at noise multiplier sigma are mu_i = sqrt(T) / sigma -GDP whatever the sampling rate (a
//    Poisson sample only mixes each output with one that does not depend on the example, which
//    cannot help to tell neighbours apart), so this part charges full-batch jobs exactly and gives
//    sampled jobs no credit for their subsampling.
//
// Why the parts together are (epsilon, delta)-DP. Fix neighbours, and let P and Q be the laws of
// the whole transcript (every admitted mechanism's output). Each part j alone, run as the only
// filter, gives laws P_j, Q_j that are (epsilon, delta_j)-close. The event G_j "part j admits
// everything that was admitted" is a function of the transcript, and on G_j the transcript is the
// one part j alone would have produced (it admitted each mechanism in turn, and refused the
// next one whenever the whole filter did), so P and P_j agree on subsets of G_j, and so do Q and
// Q_j. Some part admits everything at the end (the last admission needed one), so the disjoint
// events G'_j = G_j minus G_1..G_(j-1) cover the transcripts, and for every set S,
//   P(S) = sum_j P_j(S n G'_j) <= sum_j (e^epsilon Q_j(S n G'_j) + delta_j) <= e^epsilon Q(S) +
//   delta.
// The split of delta is a union bound, and it is the whole price of adaptivity over the parts'
// own conversions: log(1 / share) / (alpha - 1) for a Renyi part, a little for a Gaussian one.
//
// Which parts a dataset gets is fixed when its first reservation is admitted, from that first
// job's mechanism and the budget (FittedTo). That is before any output computed from the dataset
// exists, so the choice depends on nothing the neighbours could change, as if it had been given at
// registration; once fixed it never changes (the ledger stores it).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accountant/mechanism.h"
#include "accountant/rdp.h"

namespace dpfleet::accountant {

// The mechanisms a filter has admitted, in the two forms its parts read.
class AdmittedMechanisms {
 public:
  // Adds `steps` steps of a mechanism whose one-step RDP curve is `one_step` and whose noise
  // multiplier is `sigma` (Gaussian DP mu^2 = steps / sigma^2).
  void ComposeSteps(const RdpCurve& one_step, int64_t steps, double sigma);
  // Adds the mechanism. Errors: kInvalidArgument from ValidateMechanism.
  absl::Status Compose(const SubsampledGaussian& mechanism);

  const RdpCurve& rdp() const { return rdp_; }
  double mu_squared() const { return mu_squared_; }
  bool empty() const { return mu_squared_ == 0; }

 private:
  RdpCurve rdp_;
  double mu_squared_ = 0;
};

struct FilterPart {
  enum class Kind { kRenyi, kGaussian };
  Kind kind = Kind::kRenyi;
  double order = 0;        // kRenyi: an order of DefaultRdpOrders(); 0 for kGaussian.
  double delta_share = 0;  // This part's delta is delta_share * delta; shares sum to <= 1.
};

class PrivacyFilter {
 public:
  // The filter of ledgers before schema 4: Renyi parts at 26 orders from 1.5 to 256, delta / 26
  // each. Datasets that were charged before the upgrade keep it.
  static const PrivacyFilter& Legacy();

  // Returns the filter for a dataset whose first admitted job is `first`, with budget
  // (epsilon_budget, delta):
  //  - q < 1: Renyi at the order where `first` alone attains its epsilon (RdpEpsilon), and Renyi
  //    at the order where a budget spent on jobs like it runs out (the optimal order of a multiple
  //    of its RDP curve whose epsilon is epsilon_budget), delta / 2 each (one part with all of
  //    delta when the two orders agree). The first job is charged log(2) / (alpha - 1) over its
  //    own epsilon (+7% for the demo's job of epsilon 2), and the budget loses as little.
  //  - q = 1: Gaussian at 0.9 delta (a full-batch job is charged under 1% over its exact
  //    epsilon), and Renyi at 0.1 delta at the order where such a budget runs out, so later
  //    sampled jobs still get credit for subsampling.
  // Errors: kInvalidArgument for the mechanism, the budget or delta.
  static absl::StatusOr<PrivacyFilter> FittedTo(const SubsampledGaussian& first,
                                                double epsilon_budget, double delta);
  // FittedTo for `steps` steps of the mechanism whose one-step RDP curve is `one_step`.
  static absl::StatusOr<PrivacyFilter> FittedToSteps(const RdpCurve& one_step, int64_t steps,
                                                     bool full_batch, double epsilon_budget,
                                                     double delta);

  // Returns the filter from its Serialize() form ("renyi:ORDER:SHARE" or "gaussian:SHARE", joined
  // by ','). Errors: kDataLoss naming what is malformed (an unknown kind, an order off the grid, a
  // share outside (0, 1], shares summing above 1).
  static absl::StatusOr<PrivacyFilter> Parse(const std::string& text);
  std::string Serialize() const;

  // Returns the parts in words, e.g. "Renyi order 6.2 at delta/2 + Renyi order 2.6 at delta/2".
  std::string Describe() const;

  const std::vector<FilterPart>& parts() const { return parts_; }

  // Returns the smallest budget epsilon' at which this filter at (epsilon', delta) admits
  // `admitted`: the minimum over the parts of each part's level, which is
  //   Renyi:    rho(alpha) + log((alpha - 1) / alpha) + (log(1 / delta_j) - log(alpha)) / (alpha -
  //   1) Gaussian: the exact epsilon of sqrt(mu_squared)-GDP at delta_j (infinite beyond mu =
  //   1000).
  // A mechanism is admitted against budget epsilon exactly when Epsilon(admitted + it) <= epsilon,
  // so this is the level the ledger reports as admitted so far (not an odometer: only the filter's
  // budget is a valid bound under adaptivity); 0 when nothing was admitted.
  // Errors: kInvalidArgument for delta.
  absl::StatusOr<double> Epsilon(const AdmittedMechanisms& admitted, double delta) const;

  // Returns the largest number of steps T >= 0 of the mechanism (q, sigma) that the filter at
  // (epsilon_budget, delta) still admits after `admitted` (Epsilon grows with T: a bisection).
  // Errors: kInvalidArgument for q, sigma, delta or a budget not finite and > 0.
  absl::StatusOr<int64_t> MaxSteps(const AdmittedMechanisms& admitted, double q, double sigma,
                                   double epsilon_budget, double delta) const;

 private:
  explicit PrivacyFilter(std::vector<FilterPart> parts) : parts_(std::move(parts)) {}
  std::vector<FilterPart> parts_;
};

// Returns the largest T >= 0 such that `first` with T steps is admitted by the filter fitted to it
// (FittedTo) at (epsilon_budget, delta): what a dataset whose filter is not fixed yet can run.
// Errors as in FittedTo.
absl::StatusOr<int64_t> MaxStepsOfFirstJob(double q, double sigma, double epsilon_budget,
                                           double delta);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_PRIVACY_FILTER_H_
