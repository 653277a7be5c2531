#include "accountant/privacy_filter.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "accountant/gaussian.h"
#include "common/status.h"

namespace dpfleet::accountant {
namespace {

constexpr int64_t kMaxSteps = int64_t{1} << 40;
// Beyond this mu the Gaussian part's epsilon exceeds 10^5: it admits nothing any budget allows.
constexpr double kMaxGaussianMu = 1000;

// The position of `order` in DefaultRdpOrders(), or -1.
int OrderIndex(double order) {
  const std::vector<double>& grid = DefaultRdpOrders();
  for (size_t i = 0; i < grid.size(); ++i) {
    if (std::fabs(grid[i] - order) < 1e-9) return static_cast<int>(i);
  }
  return -1;
}

double RenyiLevel(double rho, double alpha, double part_delta) {
  return rho + std::log1p(-1.0 / alpha) +
         (std::log(1.0 / part_delta) - std::log(alpha)) / (alpha - 1.0);
}

// The optimal conversion order of `curve` scaled so that its epsilon is epsilon_budget: where a
// budget spent on mechanisms like it runs out. Epsilon grows with the scale: a bisection.
absl::StatusOr<double> OrderWhereBudgetRunsOut(const RdpCurve& curve, double epsilon_budget,
                                               double delta) {
  auto scaled = [&](double scale) {
    std::vector<double> rdp = curve.rdp();
    for (double& rho : rdp) rho *= scale;
    return EpsilonFromRdp(DefaultRdpOrders(), rdp, delta);
  };
  double lo = 0, hi = 1;
  while (true) {
    DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder at_hi, scaled(hi));
    if (at_hi.epsilon >= epsilon_budget || hi > 1e12) break;
    lo = hi;
    hi *= 2;
  }
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder at_mid, scaled(mid));
    (at_mid.epsilon >= epsilon_budget ? hi : lo) = mid;
  }
  DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder at_budget, scaled(hi));
  return at_budget.order;
}

std::string ShareInWords(double share) {
  for (int divisor : {1, 2, 26}) {
    if (std::fabs(share * divisor - 1.0) < 1e-9) {
      return divisor == 1 ? "delta" : absl::StrCat("delta/", divisor);
    }
  }
  return absl::StrFormat("%g delta", share);
}

// Bisection for the largest T in [0, kMaxSteps] with fits(T), given that fits grows false in T.
template <typename Fits>
absl::StatusOr<int64_t> LargestFitting(Fits fits) {
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

absl::Status ValidateBudget(double epsilon_budget) {
  if (std::isfinite(epsilon_budget) && epsilon_budget > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("epsilon_budget must be finite and > 0, got ", epsilon_budget));
}

}  // namespace

void AdmittedMechanisms::ComposeSteps(const RdpCurve& one_step, int64_t steps, double sigma) {
  rdp_.Compose(one_step, steps);
  mu_squared_ += static_cast<double>(steps) / (sigma * sigma);
}

absl::Status AdmittedMechanisms::Compose(const SubsampledGaussian& mechanism) {
  RdpCurve one_step;
  DPFLEET_RETURN_IF_ERROR(one_step.Compose(
      {.sampling_rate = mechanism.sampling_rate, .noise_multiplier = mechanism.noise_multiplier}));
  ComposeSteps(one_step, mechanism.steps, mechanism.noise_multiplier);
  return absl::OkStatus();
}

const PrivacyFilter& PrivacyFilter::Legacy() {
  static const PrivacyFilter* const legacy = [] {
    std::vector<FilterPart> parts;
    const std::vector<double> orders = {1.5,  2.0,  2.5,  3.0,  3.5,  4.0,  4.5,   5.0,  6.0,
                                        7.0,  8.0,  9.0,  10.0, 12.0, 14.0, 16.0,  20.0, 24.0,
                                        28.0, 32.0, 40.0, 48.0, 56.0, 64.0, 128.0, 256.0};
    for (double order : orders) {
      parts.push_back({.kind = FilterPart::Kind::kRenyi,
                       .order = order,
                       .delta_share = 1.0 / static_cast<double>(orders.size())});
    }
    return new PrivacyFilter(std::move(parts));
  }();
  return *legacy;
}

absl::StatusOr<PrivacyFilter> PrivacyFilter::FittedTo(const SubsampledGaussian& first,
                                                      double epsilon_budget, double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateMechanism(first));
  RdpCurve one_step;
  DPFLEET_RETURN_IF_ERROR(one_step.Compose(
      {.sampling_rate = first.sampling_rate, .noise_multiplier = first.noise_multiplier}));
  return FittedToSteps(one_step, std::max<int64_t>(first.steps, 1), first.sampling_rate == 1.0,
                       epsilon_budget, delta);
}

absl::StatusOr<PrivacyFilter> PrivacyFilter::FittedToSteps(const RdpCurve& one_step, int64_t steps,
                                                           bool full_batch, double epsilon_budget,
                                                           double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateBudget(epsilon_budget));
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  RdpCurve curve;
  curve.Compose(one_step, steps);
  DPFLEET_ASSIGN_OR_RETURN(const double budget_order,
                           OrderWhereBudgetRunsOut(curve, epsilon_budget, delta));
  using Kind = FilterPart::Kind;
  if (full_batch) {
    return PrivacyFilter({{.kind = Kind::kGaussian, .order = 0, .delta_share = 0.9},
                          {.kind = Kind::kRenyi, .order = budget_order, .delta_share = 0.1}});
  }
  DPFLEET_ASSIGN_OR_RETURN(const EpsilonAndOrder own, curve.Epsilon(delta));
  if (own.order == budget_order) {
    return PrivacyFilter({{.kind = Kind::kRenyi, .order = own.order, .delta_share = 1.0}});
  }
  return PrivacyFilter({{.kind = Kind::kRenyi, .order = own.order, .delta_share = 0.5},
                        {.kind = Kind::kRenyi, .order = budget_order, .delta_share = 0.5}});
}

absl::StatusOr<PrivacyFilter> PrivacyFilter::Parse(const std::string& text) {
  std::vector<FilterPart> parts;
  double total_share = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    const std::vector<absl::string_view> fields = absl::StrSplit(item, ':');
    auto malformed = [&](absl::string_view why) {
      return absl::DataLossError(
          absl::StrCat("privacy filter '", text, "': part '", item, "' ", why));
    };
    FilterPart part;
    absl::string_view share_text;
    if (fields[0] == "renyi" && fields.size() == 3) {
      part.kind = FilterPart::Kind::kRenyi;
      if (!absl::SimpleAtod(fields[1], &part.order) || OrderIndex(part.order) < 0) {
        return malformed("has an order that is not one of the RDP grid's");
      }
      share_text = fields[2];
    } else if (fields[0] == "gaussian" && fields.size() == 2) {
      part.kind = FilterPart::Kind::kGaussian;
      share_text = fields[1];
    } else {
      return malformed("is neither renyi:ORDER:SHARE nor gaussian:SHARE");
    }
    if (!absl::SimpleAtod(share_text, &part.delta_share) || !(part.delta_share > 0) ||
        part.delta_share > 1) {
      return malformed("has a delta share outside (0, 1]");
    }
    total_share += part.delta_share;
    parts.push_back(part);
  }
  if (total_share > 1 + 1e-12) {
    return absl::DataLossError(
        absl::StrCat("privacy filter '", text, "': delta shares sum to ", total_share, " > 1"));
  }
  return PrivacyFilter(std::move(parts));
}

std::string PrivacyFilter::Serialize() const {
  return absl::StrJoin(parts_, ",", [](std::string* out, const FilterPart& part) {
    if (part.kind == FilterPart::Kind::kGaussian) {
      absl::StrAppend(out, absl::StrFormat("gaussian:%.17g", part.delta_share));
    } else {
      absl::StrAppend(out, absl::StrFormat("renyi:%.17g:%.17g", part.order, part.delta_share));
    }
  });
}

std::string PrivacyFilter::Describe() const {
  return absl::StrJoin(parts_, " + ", [](std::string* out, const FilterPart& part) {
    if (part.kind == FilterPart::Kind::kGaussian) {
      absl::StrAppend(out, "Gaussian DP at ", ShareInWords(part.delta_share));
    } else {
      absl::StrAppend(
          out, absl::StrFormat("Renyi order %g at %s", part.order, ShareInWords(part.delta_share)));
    }
  });
}

absl::StatusOr<double> PrivacyFilter::Epsilon(const AdmittedMechanisms& admitted,
                                              double delta) const {
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  if (admitted.empty()) return 0.0;
  double best = std::numeric_limits<double>::infinity();
  for (const FilterPart& part : parts_) {
    const double part_delta = part.delta_share * delta;
    if (part.kind == FilterPart::Kind::kRenyi) {
      const double rho = admitted.rdp().rdp()[OrderIndex(part.order)];
      best = std::min(best, RenyiLevel(rho, part.order, part_delta));
    } else {
      const double mu = std::sqrt(admitted.mu_squared());
      if (mu > kMaxGaussianMu) continue;
      DPFLEET_ASSIGN_OR_RETURN(const double epsilon, GaussianEpsilon(mu, part_delta));
      best = std::min(best, epsilon);
    }
  }
  return best;
}

absl::StatusOr<int64_t> PrivacyFilter::MaxSteps(const AdmittedMechanisms& admitted, double q,
                                                double sigma, double epsilon_budget,
                                                double delta) const {
  DPFLEET_RETURN_IF_ERROR(ValidateBudget(epsilon_budget));
  RdpCurve one_step;
  DPFLEET_RETURN_IF_ERROR(
      one_step.Compose({.sampling_rate = q, .noise_multiplier = sigma, .steps = 1}));
  return LargestFitting([&](int64_t steps) -> absl::StatusOr<bool> {
    AdmittedMechanisms total = admitted;
    total.ComposeSteps(one_step, steps, sigma);
    DPFLEET_ASSIGN_OR_RETURN(const double epsilon, Epsilon(total, delta));
    return epsilon <= epsilon_budget;
  });
}

absl::StatusOr<int64_t> MaxStepsOfFirstJob(double q, double sigma, double epsilon_budget,
                                           double delta) {
  DPFLEET_RETURN_IF_ERROR(ValidateBudget(epsilon_budget));
  DPFLEET_RETURN_IF_ERROR(ValidateDelta(delta));
  RdpCurve one_step;
  DPFLEET_RETURN_IF_ERROR(
      one_step.Compose({.sampling_rate = q, .noise_multiplier = sigma, .steps = 1}));
  return LargestFitting([&](int64_t steps) -> absl::StatusOr<bool> {
    if (steps == 0) return true;
    DPFLEET_ASSIGN_OR_RETURN(
        const PrivacyFilter filter,
        PrivacyFilter::FittedToSteps(one_step, steps, q == 1.0, epsilon_budget, delta));
    AdmittedMechanisms admitted;
    admitted.ComposeSteps(one_step, steps, sigma);
    DPFLEET_ASSIGN_OR_RETURN(const double epsilon, filter.Epsilon(admitted, delta));
    return epsilon <= epsilon_budget;
  });
}

}  // namespace dpfleet::accountant
