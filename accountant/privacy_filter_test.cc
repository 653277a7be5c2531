#include "accountant/privacy_filter.h"

#include <cmath>

#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

RdpCurve Curve(double q, double sigma, int64_t steps) {
  RdpCurve curve;
  EXPECT_TRUE(curve.Compose({.sampling_rate = q, .noise_multiplier = sigma, .steps = steps}).ok());
  return curve;
}

TEST(FilterOrders, AreAGridSubsetAbovePointFive) {
  EXPECT_EQ(FilterOrders().size(), 26u);
  EXPECT_EQ(FilterOrders().front(), 1.5);
  EXPECT_EQ(FilterOrders().back(), 256.0);
}

TEST(FilterEpsilon, IsTheImprovedConversionWithDeltaSplitOverTheOrders) {
  // One full-batch step at sigma = 5: rho(alpha) = alpha / 50.
  const RdpCurve curve = Curve(1.0, 5.0, 1);
  const double k = static_cast<double>(FilterOrders().size());
  double expected = INFINITY;
  for (double alpha : FilterOrders()) {
    expected = std::min(expected, alpha / 50 + std::log((alpha - 1) / alpha) +
                                      (std::log(k / 1e-5) - std::log(alpha)) / (alpha - 1));
  }
  EXPECT_NEAR(*FilterEpsilon(curve, 1e-5), expected, 1e-12);
}

TEST(FilterEpsilon, CostsMoreThanFixedCompositionButNotMuchMore) {
  // The price of adaptivity: delta / K instead of delta, on a coarser grid. Here: 3.02 vs 2.60.
  const RdpCurve curve = Curve(256.0 / 60000, 1.1, 14063);
  const double fixed = curve.Epsilon(1e-5)->epsilon;
  const double filter = *FilterEpsilon(curve, 1e-5);
  EXPECT_GT(filter, fixed);
  EXPECT_LT(filter, 1.2 * fixed);
}

TEST(MaxStepsWithinFilter, IsTheLastStepTheFilterAdmits) {
  const RdpCurve spent = Curve(0.01, 1.0, 200);
  const int64_t steps = *MaxStepsWithinFilter(spent, 0.01, 1.0, 3.0, 1e-5);
  ASSERT_GT(steps, 0);
  RdpCurve total = spent;
  total.Compose(Curve(0.01, 1.0, steps));
  EXPECT_LE(*FilterEpsilon(total, 1e-5), 3.0);
  total.Compose(Curve(0.01, 1.0, 1));
  EXPECT_GT(*FilterEpsilon(total, 1e-5), 3.0);
  EXPECT_EQ(*MaxStepsWithinFilter(Curve(1.0, 0.1, 1), 0.01, 1.0, 3.0, 1e-5), 0);
  EXPECT_EQ(MaxStepsWithinFilter(spent, 0.01, 1.0, -3.0, 1e-5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::accountant
