#include "accountant/numerics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dpfleet::accountant {

double LogAdd(double a, double b) {
  constexpr double kMinusInf = -std::numeric_limits<double>::infinity();
  if (a == kMinusInf) return b;
  if (b == kMinusInf) return a;
  const double hi = std::max(a, b);
  return hi + std::log1p(std::exp(std::min(a, b) - hi));
}

double LogErfc(double x) {
  if (x < 20.0) return std::log(std::erfc(x));
  const double u = 1.0 / (2.0 * x * x);
  const double series = 1.0 - u + 3.0 * u * u - 15.0 * u * u * u + 105.0 * u * u * u * u;
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log(series);
}

double LogNormalCdf(double x) { return LogErfc(-x / M_SQRT2) - M_LN2; }

double NormalCdf(double x) { return 0.5 * std::erfc(-x / M_SQRT2); }

}  // namespace dpfleet::accountant
