#include "accountant/accounting.h"

#include <cmath>

#include "accountant/gaussian.h"
#include "accountant/rdp.h"
#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

TEST(Accounting, AutoIsExactForFullBatchAndRdpOtherwise) {
  const SubsampledGaussian full{.sampling_rate = 1.0, .noise_multiplier = 2.0, .steps = 3};
  EXPECT_EQ(*MechanismEpsilon(full, 1e-6, AccountingMethod::kAuto),
            *FullBatchEpsilon(2.0, 3, 1e-6));
  const SubsampledGaussian sampled{.sampling_rate = 0.01, .noise_multiplier = 1.0, .steps = 100};
  EXPECT_EQ(*MechanismEpsilon(sampled, 1e-6, AccountingMethod::kAuto),
            RdpEpsilon(sampled, 1e-6)->epsilon);
  // For full batch, RDP is valid but looser than exact: RDP >= exact.
  EXPECT_GT(*MechanismEpsilon(full, 1e-6, AccountingMethod::kRdp),
            *MechanismEpsilon(full, 1e-6, AccountingMethod::kExact));
}

TEST(CombinedNoiseMultiplier, IsTheGaussianMechanismOfBothReleases) {
  EXPECT_EQ(CombinedNoiseMultiplier(1.3, 0), 1.3);
  EXPECT_EQ(CombinedNoiseMultiplier(0, 2.0), 0);
  EXPECT_DOUBLE_EQ(CombinedNoiseMultiplier(1.0, 1.0), 1 / std::sqrt(2.0));
  // Less private than either release alone, and the inverse recovers the gradient's multiplier.
  const double combined = CombinedNoiseMultiplier(1.0, 3.0);
  EXPECT_LT(combined, 1.0);
  EXPECT_NEAR(*GradientNoiseMultiplierFor(combined, 3.0), 1.0, 1e-12);
  EXPECT_EQ(GradientNoiseMultiplierFor(1.0, 0.9).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Renyi DP of Gaussians adds up (alpha / (2 sigma^2) each): one full-batch step of each release,
  // composed, is one step of the combined mechanism, at every order.
  RdpCurve both;
  ASSERT_TRUE(both.Compose({.sampling_rate = 1.0, .noise_multiplier = 1.0, .steps = 1}).ok());
  ASSERT_TRUE(both.Compose({.sampling_rate = 1.0, .noise_multiplier = 3.0, .steps = 1}).ok());
  RdpCurve one;
  ASSERT_TRUE(one.Compose({.sampling_rate = 1.0, .noise_multiplier = combined, .steps = 1}).ok());
  EXPECT_NEAR(both.Epsilon(1e-5)->epsilon, one.Epsilon(1e-5)->epsilon, 1e-9);
}

TEST(Accounting, MethodsThatDoNotApplySaySo) {
  const SubsampledGaussian sampled{.sampling_rate = 0.01, .noise_multiplier = 1.0, .steps = 100};
  const auto exact = MechanismEpsilon(sampled, 1e-6, AccountingMethod::kExact);
  EXPECT_EQ(exact.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(exact.status().message().find("sampling_rate"), std::string::npos);
  EXPECT_LT(*MechanismEpsilon(sampled, 1e-6, AccountingMethod::kPld),
            *MechanismEpsilon(sampled, 1e-6, AccountingMethod::kRdp));
  EXPECT_EQ(ParseAccountingMethod("moments").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseAccountingMethod("exact"), AccountingMethod::kExact);
}

TEST(Accounting, CalibrationUsesTheChosenMethod) {
  const CalibratedNoise exact = *CalibrateNoise(1.0, 1, 4.0, 1e-6, AccountingMethod::kAuto);
  const CalibratedNoise rdp = *CalibrateNoise(1.0, 1, 4.0, 1e-6, AccountingMethod::kRdp);
  EXPECT_LT(exact.noise_multiplier, rdp.noise_multiplier);
  // Each says which method computed its epsilon.
  EXPECT_EQ(exact.method, AccountingMethod::kExact);
  EXPECT_EQ(rdp.method, AccountingMethod::kRdp);
  const CalibratedNoise pld = *CalibrateNoise(0.01, 500, 2.0, 1e-5, AccountingMethod::kPld);
  const CalibratedNoise sampled_rdp = *CalibrateNoise(0.01, 500, 2.0, 1e-5, AccountingMethod::kRdp);
  EXPECT_LT(pld.noise_multiplier, sampled_rdp.noise_multiplier);
  EXPECT_LE(pld.epsilon, 2.0);
  EXPECT_EQ(pld.method, AccountingMethod::kPld);
}

}  // namespace
}  // namespace dpfleet::accountant
