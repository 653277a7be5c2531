#include "accountant/calibration.h"

#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

TEST(CalibrateNoiseMultiplier, MeetsTargetAndIsTight) {
  for (double target : {0.5, 2.0, 8.0}) {
    const CalibratedNoise noise = *CalibrateNoiseMultiplier(256.0 / 60000, 14063, target, 1e-5);
    EXPECT_LE(noise.epsilon, target);
    const double looser = RdpEpsilon({.sampling_rate = 256.0 / 60000,
                                      .noise_multiplier = noise.noise_multiplier * 0.999,
                                      .steps = 14063},
                                     1e-5)
                              ->epsilon;
    EXPECT_GT(looser, target) << "a 0.1% smaller sigma should miss target " << target;
  }
}

TEST(CalibrateNoiseMultiplier, RoundTripsThroughEpsilon) {
  const double sigma = 1.1;
  const double epsilon =
      RdpEpsilon({.sampling_rate = 0.01, .noise_multiplier = sigma, .steps = 1000}, 1e-5)->epsilon;
  const CalibratedNoise noise = *CalibrateNoiseMultiplier(0.01, 1000, epsilon, 1e-5);
  EXPECT_NEAR(noise.noise_multiplier, sigma, 1e-4);
}

TEST(CalibrateNoiseMultiplier, RejectsBadTargets) {
  EXPECT_EQ(CalibrateNoiseMultiplier(0.01, 100, -1.0, 1e-5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CalibrateNoiseMultiplier(0.01, 100, 1.0, 1.5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CalibrateNoiseMultiplier(0.01, 0, 1.0, 1e-5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CalibrateNoiseMultiplier(1.0, int64_t{1} << 40, 1e-9, 1e-5).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dpfleet::accountant
