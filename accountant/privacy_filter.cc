#include "accountant/privacy_filter.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

constexpr int64_t kMaxSteps = int64_t{1} << 40;

// Positions of FilterOrders() in DefaultRdpOrders().
const std::vector<size_t>& FilterOrderIndices() {
  static const std::vector<size_t>* const indices = [] {
    auto* result = new std::vector<size_t>();
    const std::vector<double>& grid = DefaultRdpOrders();
    for (double order :
         {1.5,  2.0,  2.5,  3.0,  3.5,  4.0,  4.5,  5.0,  6.0,  7.0,  8.0,  9.0,   10.0,
          12.0, 14.0, 16.0, 20.0, 24.0, 28.0, 32.0, 40.0, 48.0, 56.0, 64.0, 128.0, 256.0}) {
      for (size_t i = 0; i < grid.size(); ++i) {
        if (std::fabs(grid[i] - order) < 1e-9) result->push_back(i);
      }
    }
    return result;
  }();
  return *indices;
}

}  // namespace

const std::vector<double>& FilterOrders() {
  static const std::vector<double>* const orders = [] {
    auto* result = new std::vector<double>();
    for (size_t i : FilterOrderIndices()) result->push_back(DefaultRdpOrders()[i]);
    return result;
  }();
  return *orders;
}

absl::StatusOr<double> FilterEpsilon(const RdpCurve& admitted, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  const std::vector<double>& rdp = admitted.rdp();
  if (std::all_of(rdp.begin(), rdp.end(), [](double rho) { return rho == 0.0; })) return 0.0;
  const std::vector<size_t>& indices = FilterOrderIndices();
  const double log_k_over_delta = std::log(static_cast<double>(indices.size()) / delta);
  double best = std::numeric_limits<double>::infinity();
  for (size_t i : indices) {
    const double alpha = DefaultRdpOrders()[i];
    best = std::min(best, rdp[i] + std::log1p(-1.0 / alpha) +
                              (log_k_over_delta - std::log(alpha)) / (alpha - 1.0));
  }
  return best;
}

absl::StatusOr<int64_t> MaxStepsWithinFilter(const RdpCurve& admitted, double q, double sigma,
                                             double epsilon_budget, double delta) {
  if (!std::isfinite(epsilon_budget) || epsilon_budget <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon_budget must be finite and > 0, got ", epsilon_budget));
  }
  RdpCurve one_step;
  DPFLEET_RETURN_IF_ERROR(
      one_step.Compose({.sampling_rate = q, .noise_multiplier = sigma, .steps = 1}));
  auto fits = [&](int64_t steps) -> absl::StatusOr<bool> {
    RdpCurve total = admitted;
    total.Compose(one_step, steps);
    DPFLEET_ASSIGN_OR_RETURN(const double epsilon, FilterEpsilon(total, delta));
    return epsilon <= epsilon_budget;
  };
  DPFLEET_ASSIGN_OR_RETURN(const bool any_fits, fits(0));
  if (!any_fits) return 0;
  int64_t lo = 0;  // fits(lo)
  int64_t hi = 1;  // !fits(hi) once the doubling stops below kMaxSteps
  while (hi < kMaxSteps) {
    DPFLEET_ASSIGN_OR_RETURN(const bool hi_fits, fits(hi));
    if (!hi_fits) break;
    lo = hi;
    hi *= 2;
  }
  if (hi >= kMaxSteps) return kMaxSteps;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    DPFLEET_ASSIGN_OR_RETURN(const bool mid_fits, fits(mid));
    (mid_fits ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace dpfleet::accountant
