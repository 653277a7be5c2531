#include "accountant/rdp.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "accountant/numerics.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log A_alpha for integer alpha (Mironov, Talwar, Zhang 2019, Section 3.3):
// A_alpha = sum_{i=0}^{alpha} C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2)).
double LogAInteger(double q, double sigma, int alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double lgamma_alpha = std::lgamma(alpha + 1.0);
  double log_a = -kInf;
  for (int i = 0; i <= alpha; ++i) {
    const double log_binom = lgamma_alpha - std::lgamma(i + 1.0) - std::lgamma(alpha - i + 1.0);
    const double term = log_binom + i * log_q + (alpha - i) * log_1mq +
                        (static_cast<double>(i) * i - i) / (2.0 * sigma * sigma);
    log_a = LogAdd(log_a, term);
  }
  return log_a;
}

// log A_alpha for fractional alpha (Mironov, Talwar, Zhang 2019, Section 3.3): A_alpha splits at
// z0 = sigma^2 log(1/q - 1) + 1/2 into two integrals, each expanded as a series over the
// generalized binomial coefficients C(alpha, i) with Gaussian-tail (erfc) weights. Every integral
// in the series is positive, so summing |C(alpha, i)| gives an upper bound on A_alpha, never an
// under-count; the signed sum with early truncation (TF-Privacy before 2023) was found to
// under-count at small orders. Stops once both terms decrease and are below e^-30 of the total, as
// dp_accounting does; returns NaN when the series does not converge in kMaxFractionalTerms terms.
constexpr int kMaxFractionalTerms = 1000;

double LogAFractional(double q, double sigma, double alpha) {
  double log_a0 = -kInf;
  double log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1.0 / q - 1.0) + 0.5;
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  double log_abs_binom = 0.0;  // log |C(alpha, 0)|
  double last_s0 = -kInf;
  double last_s1 = -kInf;
  for (int i = 0; i < kMaxFractionalTerms; ++i) {
    const double j = alpha - i;
    const double log_t0 = log_abs_binom + i * log_q + j * log_1mq;
    const double log_t1 = log_abs_binom + j * log_q + i * log_1mq;
    const double log_e0 = std::log(0.5) + LogErfc((i - z0) / (M_SQRT2 * sigma));
    const double log_e1 = std::log(0.5) + LogErfc((z0 - j) / (M_SQRT2 * sigma));
    const double log_s0 =
        log_t0 + (static_cast<double>(i) * i - i) / (2.0 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
    log_a0 = LogAdd(log_a0, log_s0);
    log_a1 = LogAdd(log_a1, log_s1);
    const double total = LogAdd(log_a0, log_a1);
    if (log_s0 < last_s0 && log_s1 < last_s1 && std::max(log_s0, log_s1) < total - 30.0) {
      return total;
    }
    last_s0 = log_s0;
    last_s1 = log_s1;
    // |C(alpha, i + 1)| = |C(alpha, i)| * |alpha - i| / (i + 1).
    log_abs_binom += std::log(std::fabs(alpha - i)) - std::log(i + 1.0);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

const std::vector<double>& DefaultRdpOrders() {
  static const std::vector<double>* const orders = [] {
    auto* grid = new std::vector<double>();
    for (int x = 1; x < 100; ++x) grid->push_back(1.0 + x / 10.0);
    for (int a = 11; a < 64; ++a) grid->push_back(a);
    for (double a : {64.0, 128.0, 256.0, 512.0, 1024.0}) grid->push_back(a);
    return grid;
  }();
  return *orders;
}

absl::StatusOr<double> SubsampledGaussianRdp(double q, double sigma, double alpha) {
  DPFLEET_RETURN_IF_ERROR(
      ValidateMechanism({.sampling_rate = q, .noise_multiplier = sigma, .steps = 1}));
  if (!(alpha > 1.0) || !std::isfinite(alpha)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Renyi order must be finite and > 1, got ", alpha));
  }
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  const double log_a = (alpha == std::floor(alpha) && alpha <= 1e6)
                           ? LogAInteger(q, sigma, static_cast<int>(alpha))
                           : LogAFractional(q, sigma, alpha);
  // A numerically unusable order is reported as infinite RDP: it then never wins the minimum in the
  // conversion to epsilon, so accounting stays an upper bound.
  if (std::isnan(log_a)) return kInf;
  return std::max(0.0, log_a / (alpha - 1.0));
}

RdpCurve::RdpCurve() : rdp_(DefaultRdpOrders().size(), 0.0) {}

absl::Status RdpCurve::Compose(const SubsampledGaussian& mechanism) {
  DPFLEET_RETURN_IF_ERROR(ValidateMechanism(mechanism));
  if (mechanism.steps == 0) return absl::OkStatus();
  const std::vector<double>& orders = DefaultRdpOrders();
  for (size_t i = 0; i < orders.size(); ++i) {
    DPFLEET_ASSIGN_OR_RETURN(
        const double rho,
        SubsampledGaussianRdp(mechanism.sampling_rate, mechanism.noise_multiplier, orders[i]));
    rdp_[i] += static_cast<double>(mechanism.steps) * rho;
  }
  return absl::OkStatus();
}

void RdpCurve::Compose(const RdpCurve& other, int64_t times) {
  for (size_t i = 0; i < rdp_.size(); ++i) rdp_[i] += static_cast<double>(times) * other.rdp_[i];
}

absl::StatusOr<EpsilonAndOrder> EpsilonFromRdp(const std::vector<double>& orders,
                                               const std::vector<double>& rdp, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  if (orders.size() != rdp.size() || orders.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("need one rdp value per order, got ",
                                                   orders.size(), " orders and ", rdp.size(),
                                                   " values"));
  }
  EpsilonAndOrder best{kInf, orders.front()};
  for (size_t i = 0; i < orders.size(); ++i) {
    const double alpha = orders[i];
    const double rho = rdp[i];
    if (!(alpha > 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("Renyi order must be > 1, got ", alpha));
    }
    double epsilon;
    if (delta * delta + std::expm1(-rho) > 0) {
      // delta >= sqrt(1 - exp(-rho)) bounds the total variation distance (Pinsker-type bound via
      // the Bretagnolle-Huber via the KL divergence, which RDP of any order > 1 upper-bounds):
      // epsilon = 0 suffices.
      epsilon = 0.0;
    } else {
      // Balle et al. (2020), Theorem 21 (arXiv:1905.09982); Canonne, Kamath, Steinke (2020),
      // Proposition 12 (arXiv:2004.00010).
      epsilon = rho + std::log1p(-1.0 / alpha) - std::log(delta * alpha) / (alpha - 1.0);
    }
    epsilon = std::max(0.0, epsilon);
    if (epsilon < best.epsilon) best = {epsilon, alpha};
  }
  return best;
}

absl::StatusOr<EpsilonAndOrder> RdpCurve::Epsilon(double delta) const {
  return EpsilonFromRdp(DefaultRdpOrders(), rdp_, delta);
}

absl::StatusOr<EpsilonAndOrder> RdpEpsilon(const SubsampledGaussian& mechanism, double delta) {
  RdpCurve curve;
  DPFLEET_RETURN_IF_ERROR(curve.Compose(mechanism));
  return curve.Epsilon(delta);
}

}  // namespace dpfleet::accountant
