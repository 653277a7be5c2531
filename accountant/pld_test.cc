#include "accountant/pld.h"

#include <cmath>
#include <random>

#include "accountant/gaussian.h"
#include "accountant/rdp.h"
#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

TEST(Pld, FullBatchMatchesTheExactGaussianFromAbove) {
  // q = 1: T steps are exactly the Gaussian mechanism with mu = sqrt(T) / sigma.
  for (double sigma : {0.8, 2.0}) {
    for (int64_t steps : {1, 10}) {
      const SubsampledGaussian full{
          .sampling_rate = 1.0, .noise_multiplier = sigma, .steps = steps};
      const double exact = *FullBatchEpsilon(sigma, steps, 1e-5);
      const PldResult pld = *PldEpsilon(full, 1e-5);
      EXPECT_GE(pld.epsilon, exact - 1e-9) << "PLD must never be below the exact value";
      EXPECT_LE(pld.epsilon, exact + 1e-3) << sigma << " " << steps;
      const double mu = std::sqrt(static_cast<double>(steps)) / sigma;
      EXPECT_GE(*PldDelta(full, 1.0), *GaussianDelta(mu, 1.0) - 1e-12);
    }
  }
}

TEST(Pld, IsTighterThanRdpOnDpSgd) {
  // The Abadi et al. (2016) MNIST setting; dp_accounting's PLD reports about 2.4 here, RDP
  // about 2.6.
  const SubsampledGaussian mnist{
      .sampling_rate = 256.0 / 60000, .noise_multiplier = 1.1, .steps = 14063};
  const PldResult pld = *PldEpsilon(mnist, 1e-5);
  const double rdp = RdpEpsilon(mnist, 1e-5)->epsilon;
  EXPECT_LT(pld.epsilon, rdp);
  EXPECT_GT(pld.epsilon, 0.85 * rdp);
  EXPECT_LT(pld.delta_slack, 1e-9);
}

TEST(Pld, OrderingRdpAbovePldAboveExactOnRandomFullBatchJobs) {
  std::mt19937_64 rng(7);  // Public test seed.
  std::uniform_real_distribution<double> sigma_dist(0.6, 5.0);
  std::uniform_int_distribution<int64_t> steps_dist(1, 50);
  for (int trial = 0; trial < 10; ++trial) {
    const SubsampledGaussian job{
        .sampling_rate = 1.0, .noise_multiplier = sigma_dist(rng), .steps = steps_dist(rng)};
    const double exact = *FullBatchEpsilon(job.noise_multiplier, job.steps, 1e-6);
    const double pld = PldEpsilon(job, 1e-6)->epsilon;
    const double rdp = RdpEpsilon(job, 1e-6)->epsilon;
    EXPECT_LE(exact, pld + 1e-9) << job.noise_multiplier << " " << job.steps;
    EXPECT_LE(pld, rdp + 1e-9) << job.noise_multiplier << " " << job.steps;
  }
}

TEST(Pld, FinerGridsConverge) {
  const SubsampledGaussian job{.sampling_rate = 0.01, .noise_multiplier = 1.0, .steps = 1000};
  const double coarse = PldEpsilon(job, 1e-5, {.discretization = 1e-3})->epsilon;
  const double fine = PldEpsilon(job, 1e-5, {.discretization = 1e-4})->epsilon;
  const double finer = PldEpsilon(job, 1e-5, {.discretization = 5e-5})->epsilon;
  EXPECT_LE(std::fabs(fine - finer), std::fabs(coarse - fine) + 1e-6);
  EXPECT_LT(std::fabs(fine - finer), 1e-3);
}

TEST(Pld, RejectsBadArguments) {
  const SubsampledGaussian job{.sampling_rate = 0.01, .noise_multiplier = 1.0, .steps = 10};
  EXPECT_EQ(PldEpsilon(job, 0.0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PldEpsilon(job, 1e-5, {.discretization = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      PldEpsilon({.sampling_rate = 2, .noise_multiplier = 1, .steps = 1}, 1e-5).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet::accountant
