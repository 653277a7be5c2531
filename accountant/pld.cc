#include "accountant/pld.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "accountant/numerics.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kMaxFftSize = int64_t{1} << 24;

enum class Direction { kRemove, kAdd };

// A discrete PLD: loss (offset + i) * h has probability probs[i]; infinity_mass sits at +infinity.
struct DiscretePld {
  int64_t offset = 0;
  std::vector<double> probs;
  double infinity_mass = 0;
  double slack = 0;  // The part of infinity_mass added for truncation and round-off.
};

// log Pr[N(0, 1) > z].
double LogUpperTail(double z) { return LogNormalCdf(-z); }

// The z with Pr[N(0, 1) > z] = mass, by bisection.
double UpperTailQuantile(double mass) {
  double lo = 0, hi = 40;
  const double target = std::log(mass);
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (LogUpperTail(mid) > target ? lo : hi) = mid;
  }
  return hi;
}

// The remove-direction privacy loss at output x: log((1 - q) + q e^((2x - 1) / (2 s^2))).
double RemoveLoss(double q, double s, double x) {
  const double log_mixed = std::log(q) + (2 * x - 1) / (2 * s * s);
  return q < 1 ? LogAdd(std::log1p(-q), log_mixed) : log_mixed;
}

// The exact one-step hockey-stick divergence delta(epsilon) (see pld.h for the pairs).
double OneStepDelta(Direction direction, double q, double s, double epsilon) {
  const double log_1mq = q < 1 ? std::log1p(-q) : -kInf;
  double delta;
  if (direction == Direction::kRemove) {
    if (epsilon <= log_1mq) return -std::expm1(epsilon);  // The loss always exceeds epsilon.
    // Loss > epsilon exactly when x > x_eps.
    const double x = s * s * std::log((std::expm1(epsilon) + q) / q) + 0.5;
    const double p_above =
        (1 - q) * std::exp(LogUpperTail(x / s)) + q * std::exp(LogUpperTail((x - 1) / s));
    delta = p_above - std::exp(epsilon + LogUpperTail(x / s));
  } else {
    if (epsilon >= -log_1mq) return 0.0;  // The loss never exceeds -log(1 - q).
    // Loss > epsilon exactly when x < x_eps.
    const double x = s * s * std::log((std::expm1(-epsilon) + q) / q) + 0.5;
    delta = NormalCdf(x / s) - (1 - q) * std::exp(epsilon + LogNormalCdf(x / s)) -
            q * std::exp(epsilon + LogNormalCdf((x - 1) / s));
  }
  return std::clamp(delta, 0.0, 1.0);
}

// Pessimistic connect-the-dots discretisation of one step (Doroshenko et al. 2022, Algorithm 1,
// with the fixed-gap formulas of dp_accounting): masses on the grid k * h whose hockey-stick curve
// interpolates the exact delta at every grid point.
DiscretePld ConnectTheDots(Direction direction, double q, double s, double h, double tail_mass) {
  const double z = UpperTailQuantile(tail_mass / 2);
  // Outputs x beyond these leave at most tail_mass / 2 of P on each side.
  double loss_lo, loss_hi;
  if (direction == Direction::kRemove) {  // Loss increasing in x; x ~ the mixture.
    loss_lo = RemoveLoss(q, s, -z * s);
    loss_hi = RemoveLoss(q, s, 1 + z * s);
  } else {  // Loss decreasing in x; x ~ N(0, s^2).
    loss_lo = -RemoveLoss(q, s, z * s);
    loss_hi = -RemoveLoss(q, s, -z * s);
  }
  DiscretePld pld;
  pld.offset = static_cast<int64_t>(std::floor(loss_lo / h));
  const int64_t top = static_cast<int64_t>(std::ceil(loss_hi / h));
  const int64_t n = std::max<int64_t>(1, top - pld.offset + 1);
  std::vector<double> deltas(n);
  for (int64_t i = 0; i < n; ++i) {
    deltas[i] = OneStepDelta(direction, q, s, (pld.offset + i) * h);
    if (i > 0) deltas[i] = std::min(deltas[i], deltas[i - 1]);  // Exactly non-increasing.
  }
  pld.probs.assign(n, 0.0);
  pld.infinity_mass = deltas[n - 1];
  if (n == 1) {
    pld.probs[0] = 1 - deltas[0];
    return pld;
  }
  const double expm1_h = std::expm1(h);
  const double e_h = std::exp(h);
  pld.probs[0] = (1 - deltas[0]) + (deltas[1] - deltas[0]) / expm1_h;
  for (int64_t i = 1; i + 1 < n; ++i) {
    pld.probs[i] = ((deltas[i + 1] - deltas[i]) - e_h * (deltas[i] - deltas[i - 1])) / expm1_h;
  }
  pld.probs[n - 1] = (deltas[n - 1] - deltas[n - 2]) / std::expm1(-h);
  for (double& p : pld.probs) p = std::max(0.0, p);
  return pld;
}

// In-place iterative radix-2 FFT; a.size() is a power of two.
void Fft(std::vector<std::complex<double>>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  // Twiddles from one table, each computed directly (not by recurrence) to keep round-off minimal.
  std::vector<std::complex<double>> twiddles(std::max<size_t>(1, n / 2));
  for (size_t k = 0; k < twiddles.size(); ++k) {
    twiddles[k] = std::polar(
        1.0, (inverse ? 2 : -2) * M_PI * static_cast<double>(k) / static_cast<double>(n));
  }
  for (size_t length = 2; length <= n; length <<= 1) {
    const size_t stride = n / length;
    for (size_t start = 0; start < n; start += length) {
      for (size_t k = 0; k < length / 2; ++k) {
        const std::complex<double> w = twiddles[k * stride];
        const std::complex<double> u = a[start + k];
        const std::complex<double> v = a[start + k + length / 2] * w;
        a[start + k] = u + v;
        a[start + k + length / 2] = u - v;
      }
    }
  }
  if (inverse) {
    for (std::complex<double>& x : a) x /= static_cast<double>(n);
  }
}

// log E[e^(lambda L); L finite] of a discrete PLD, shifted by the largest exponent for stability.
double LogMgf(const DiscretePld& pld, double h, double lambda) {
  double shift = -kInf;
  for (size_t i = 0; i < pld.probs.size(); ++i) {
    if (pld.probs[i] > 0)
      shift = std::max(shift, lambda * (pld.offset + static_cast<int64_t>(i)) * h);
  }
  double sum = 0;
  for (size_t i = 0; i < pld.probs.size(); ++i) {
    sum += pld.probs[i] * std::exp(lambda * (pld.offset + static_cast<int64_t>(i)) * h - shift);
  }
  return shift + std::log(sum);
}

// The T-fold composition of `pld` (Koskela et al. 2020): one FFT over a window outside which
// Chernoff bounds leave at most tail_mass on each side; that mass, the aliasing it causes, and the
// FFT's round-off floor go to infinity_mass.
absl::StatusOr<DiscretePld> SelfCompose(const DiscretePld& pld, int64_t times, double h,
                                        double tail_mass, int64_t* fft_size) {
  const double t = static_cast<double>(times);
  const double log_tail = std::log(tail_mass);
  double upper = kInf, lower = -kInf;                       // Loss units.
  for (double lambda = 1e-3; lambda <= 1e4; lambda *= 2) {  // A coarse grid still bounds validly.
    upper = std::min(upper, (t * LogMgf(pld, h, lambda) - log_tail) / lambda);
    lower = std::max(lower, -(t * LogMgf(pld, h, -lambda) - log_tail) / lambda);
  }
  const int64_t support_lo = pld.offset * times;
  const int64_t support_hi = (pld.offset + static_cast<int64_t>(pld.probs.size()) - 1) * times;
  const int64_t lo = std::max(support_lo, static_cast<int64_t>(std::floor(lower / h)));
  const int64_t hi = std::min(support_hi, static_cast<int64_t>(std::ceil(upper / h)));
  const int64_t window = hi - lo + 1;
  int64_t n = 1;
  while (n < window) n <<= 1;
  if (n > kMaxFftSize) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "PLD composition needs an FFT of ", n, " points; raise the discretization above ", h));
  }
  *fft_size = n;
  auto wrap = [n](int64_t k) { return static_cast<size_t>(((k % n) + n) % n); };
  std::vector<std::complex<double>> spectrum(n, 0.0);
  for (size_t i = 0; i < pld.probs.size(); ++i)
    spectrum[wrap(pld.offset + static_cast<int64_t>(i))] += pld.probs[i];
  Fft(spectrum, false);
  for (std::complex<double>& x : spectrum) {
    x = std::polar(std::pow(std::abs(x), t), std::arg(x) * t);
  }
  Fft(spectrum, true);
  DiscretePld composed;
  composed.offset = lo;
  composed.probs.resize(window);
  double noise_floor = 0;
  for (int64_t k = lo; k <= hi; ++k) {
    const double value = spectrum[wrap(k)].real();
    noise_floor = std::max(noise_floor, -value);
    composed.probs[k - lo] = std::max(0.0, value);
  }
  // Mass outside the window (at most tail_mass per side) was both lost and aliased into it; the
  // round-off floor, seen in the negative values, may sit in every bucket.
  const double slack = 4 * tail_mass + static_cast<double>(window) * noise_floor;
  composed.slack = slack;
  composed.infinity_mass = -std::expm1(t * std::log1p(-pld.infinity_mass)) + slack;
  return composed;
}

double DeltaForEpsilon(const DiscretePld& pld, double h, double epsilon) {
  double delta = pld.infinity_mass;
  for (size_t i = 0; i < pld.probs.size(); ++i) {
    const double loss = (pld.offset + static_cast<int64_t>(i)) * h;
    if (loss > epsilon) delta += pld.probs[i] * -std::expm1(epsilon - loss);
  }
  return std::min(1.0, delta);
}

// The smallest epsilon >= 0 with DeltaForEpsilon <= delta: delta(eps) = U - e^eps L on each
// interval between losses, U and L the masses (and e^-loss weighted masses) above it.
double EpsilonForDelta(const DiscretePld& pld, double h, double delta) {
  if (pld.infinity_mass > delta) return kInf;
  double mass_upper = pld.infinity_mass;
  double mass_lower = 0;
  for (int64_t i = static_cast<int64_t>(pld.probs.size()) - 1; i >= 0; --i) {
    const double loss = (pld.offset + i) * h;
    if (mass_upper > delta && mass_lower > 0 && std::log((mass_upper - delta) / mass_lower) >= loss)
      break;
    mass_upper += pld.probs[i];
    mass_lower += pld.probs[i] * std::exp(-loss);
  }
  if (mass_upper <= mass_lower + delta) return 0.0;
  return std::max(0.0, std::log((mass_upper - delta) / mass_lower));
}

struct ComposedPlds {
  DiscretePld remove;
  DiscretePld add;
  int64_t fft_size = 0;
};

absl::StatusOr<ComposedPlds> Compose(const SubsampledGaussian& mechanism,
                                     const PldOptions& options) {
  DPFLEET_RETURN_IF_ERROR(ValidateMechanism(mechanism));
  if (!(options.discretization > 0 && std::isfinite(options.discretization)) ||
      !(options.tail_mass > 0 && options.tail_mass < 1e-3)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PLD options need discretization > 0 and tail_mass in (0, 1e-3), got ",
                     options.discretization, " and ", options.tail_mass));
  }
  ComposedPlds result;
  const double h = options.discretization;
  for (Direction direction : {Direction::kRemove, Direction::kAdd}) {
    DiscretePld one = ConnectTheDots(direction, mechanism.sampling_rate, mechanism.noise_multiplier,
                                     h, options.tail_mass);
    int64_t fft_size = 0;
    DiscretePld composed;
    if (mechanism.steps == 0) {
      composed.probs = {1.0};
    } else if (mechanism.steps == 1) {
      composed = std::move(one);
    } else {
      DPFLEET_ASSIGN_OR_RETURN(composed,
                               SelfCompose(one, mechanism.steps, h, options.tail_mass, &fft_size));
    }
    result.fft_size = std::max(result.fft_size, fft_size);
    (direction == Direction::kRemove ? result.remove : result.add) = std::move(composed);
  }
  return result;
}

}  // namespace

absl::StatusOr<PldResult> PldEpsilon(const SubsampledGaussian& mechanism, double delta,
                                     const PldOptions& options) {
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  DPFLEET_ASSIGN_OR_RETURN(const ComposedPlds plds, Compose(mechanism, options));
  const double h = options.discretization;
  PldResult result;
  result.epsilon =
      std::max(EpsilonForDelta(plds.remove, h, delta), EpsilonForDelta(plds.add, h, delta));
  result.delta_slack = std::max(plds.remove.slack, plds.add.slack);
  result.fft_size = plds.fft_size;
  if (options.estimate_error) {
    PldOptions coarser = options;
    coarser.discretization *= 2;
    coarser.estimate_error = false;
    DPFLEET_ASSIGN_OR_RETURN(const PldResult coarse, PldEpsilon(mechanism, delta, coarser));
    result.discretization_error_estimate = std::fabs(coarse.epsilon - result.epsilon);
  }
  return result;
}

absl::StatusOr<double> PldDelta(const SubsampledGaussian& mechanism, double epsilon,
                                const PldOptions& options) {
  if (!std::isfinite(epsilon) || epsilon < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be finite and >= 0, got ", epsilon));
  }
  DPFLEET_ASSIGN_OR_RETURN(const ComposedPlds plds, Compose(mechanism, options));
  const double h = options.discretization;
  return std::max(DeltaForEpsilon(plds.remove, h, epsilon), DeltaForEpsilon(plds.add, h, epsilon));
}

}  // namespace dpfleet::accountant
