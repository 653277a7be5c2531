#include "accountant/gaussian.h"

#include <cmath>

#include "accountant/rdp.h"
#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

TEST(GaussianDelta, MatchesTheClosedForm) {
  // mu = 1, epsilon = 1: Phi(-0.5) - e Phi(-1.5).
  const double expected = 0.5 * std::erfc(0.5 / M_SQRT2) - M_E * 0.5 * std::erfc(1.5 / M_SQRT2);
  EXPECT_NEAR(*GaussianDelta(1.0, 1.0), expected, 1e-15);
  // epsilon = 0: the total variation distance 2 Phi(mu/2) - 1.
  EXPECT_NEAR(*GaussianDelta(0.8, 0.0), std::erf(0.4 / M_SQRT2), 1e-15);
}

TEST(GaussianEpsilon, InvertsDelta) {
  for (double mu : {0.1, 0.5, 1.0, 3.0}) {
    for (double delta : {1e-3, 1e-6, 1e-10}) {
      const double epsilon = *GaussianEpsilon(mu, delta);
      EXPECT_LE(*GaussianDelta(mu, epsilon), delta);
      if (epsilon > 0) EXPECT_GT(*GaussianDelta(mu, std::max(0.0, epsilon - 1e-6)), delta);
    }
  }
}

TEST(FullBatchEpsilon, IsNeverAboveRdp) {
  // Exact accounting is the tightest: RDP of the same full-batch mechanism can only be looser.
  for (double sigma : {0.7, 1.19, 5.0}) {
    for (int64_t steps : {1, 3, 100}) {
      const double exact = *FullBatchEpsilon(sigma, steps, 1e-6);
      const double rdp =
          RdpEpsilon({.sampling_rate = 1.0, .noise_multiplier = sigma, .steps = steps}, 1e-6)
              ->epsilon;
      EXPECT_LE(exact, rdp + 1e-9) << sigma << " " << steps;
    }
  }
}

TEST(CalibrateFullBatchNoise, OneStepAtEpsilonFourDeltaOneInAMillion) {
  // Mehta et al. (2022) quote sigma of about 1.19 for one full-batch step at (4, 1e-6).
  const CalibratedNoise noise = *CalibrateFullBatchNoise(1, 4.0, 1e-6);
  EXPECT_NEAR(noise.noise_multiplier, 1.19, 0.01);
  EXPECT_LE(noise.epsilon, 4.0 + 1e-9);
  EXPECT_GT(*FullBatchEpsilon(noise.noise_multiplier * 0.999, 1, 1e-6), 4.0);
}

TEST(Gaussian, RejectsBadArguments) {
  EXPECT_EQ(GaussianDelta(-1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GaussianEpsilon(1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FullBatchEpsilon(0, 1, 1e-5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CalibrateFullBatchNoise(1, NAN, 1e-5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::accountant
