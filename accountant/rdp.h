#ifndef DPFLEET_ACCOUNTANT_RDP_H_
#define DPFLEET_ACCOUNTANT_RDP_H_

// Renyi differential privacy (RDP) accounting for the Poisson-subsampled Gaussian mechanism.
//
// A mechanism is (alpha, rho)-RDP when the Renyi divergence of order alpha between its output
// distributions on any two neighbouring datasets is at most rho (Mironov 2017, "Renyi Differential
// Privacy", Definition 4). RDP composes additively at each order (ibid., Proposition 1), so a
// sequence of mechanisms, of one job or of many jobs on one dataset, is accounted by summing their
// RDP curves over a fixed grid of orders and converting the sum to (epsilon, delta) once.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "accountant/mechanism.h"

namespace dpfleet::accountant {

// The grid of Renyi orders: 1.1, 1.2, ..., 10.9, then 11, 12, ..., 63, then 64, 128, 256, 512,
// 1024. Fine enough near 1 for large epsilon and long enough for tiny epsilon.
const std::vector<double>& DefaultRdpOrders();

// Returns rho(alpha) of ONE step of the Gaussian mechanism with sensitivity 1 and noise std
// `sigma`, applied to a Poisson subsample at rate q, under add/remove neighbours; alpha > 1.
//
// q = 1: alpha / (2 sigma^2) (Mironov 2017, Proposition 7).
// q < 1, integer alpha: the exact binomial expansion of Mironov, Talwar and Zhang (2019), "Renyi
//   Differential Privacy of the Sampled Gaussian Mechanism", Section 3.3, summed in log space.
// q < 1, fractional alpha: their two-sided series with erfc tails (ibid., Section 3.3), summed in
// log
//   space until the terms fall below e^-30 of the total.
// Errors: kInvalidArgument for q outside (0, 1], sigma <= 0 or alpha <= 1.
absl::StatusOr<double> SubsampledGaussianRdp(double q, double sigma, double alpha);

struct EpsilonAndOrder {
  double epsilon;
  double order;
};

// Returns the smallest epsilon over `orders` such that a mechanism with RDP `rdp[i]` at order
// `orders[i]` is (epsilon, delta)-DP, and the order that achieves it. Uses the conversion
//   epsilon = rho + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
// of Balle et al. (2020), "Hypothesis Testing Interpretations and Renyi Differential Privacy",
// Theorem 21 (also Canonne, Kamath and Steinke 2020, Proposition 12), which is never looser than
// Mironov's rho + log(1/delta) / (alpha - 1); and epsilon = 0 where delta^2 >= 1 - exp(-rho).
// Errors: kInvalidArgument for delta outside (0, 1), mismatched sizes, or an order <= 1.
absl::StatusOr<EpsilonAndOrder> EpsilonFromRdp(const std::vector<double>& orders,
                                               const std::vector<double>& rdp, double delta);

// An RDP curve over DefaultRdpOrders(), accumulated by composition.
class RdpCurve {
 public:
  // The curve of zero mechanisms (rho = 0 at every order).
  RdpCurve();

  // Adds `mechanism.steps` steps of the mechanism (RDP composition, Mironov 2017, Proposition 1).
  // Errors: kInvalidArgument from ValidateMechanism.
  absl::Status Compose(const SubsampledGaussian& mechanism);

  // Adds `times` copies of another curve (e.g. the curve of one step, `times` = steps).
  void Compose(const RdpCurve& other, int64_t times = 1);

  // Returns EpsilonFromRdp(DefaultRdpOrders(), rdp(), delta): the composed mechanisms are
  // (epsilon, delta)-DP.
  absl::StatusOr<EpsilonAndOrder> Epsilon(double delta) const;

  const std::vector<double>& rdp() const { return rdp_; }

 private:
  std::vector<double> rdp_;  // rdp_[i] is rho at DefaultRdpOrders()[i].
};

// Returns the (epsilon, order) of `mechanism` alone at `delta`. Errors as in Compose and Epsilon.
absl::StatusOr<EpsilonAndOrder> RdpEpsilon(const SubsampledGaussian& mechanism, double delta);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_RDP_H_
