#include "accountant/privacy_filter.h"

#include <cmath>

#include "accountant/calibration.h"
#include "accountant/gaussian.h"
#include "accountant/pld.h"
#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

using Kind = FilterPart::Kind;

AdmittedMechanisms Admitted(std::initializer_list<SubsampledGaussian> mechanisms) {
  AdmittedMechanisms admitted;
  for (const SubsampledGaussian& mechanism : mechanisms) {
    EXPECT_TRUE(admitted.Compose(mechanism).ok());
  }
  return admitted;
}

// A sampled job calibrated by RDP to `epsilon`, as the coordinator plans one.
SubsampledGaussian SampledJob(double q, int64_t steps, double epsilon, double delta) {
  const CalibratedNoise noise = *CalibrateNoiseMultiplier(q, steps, epsilon, delta);
  return {.sampling_rate = q, .noise_multiplier = noise.noise_multiplier, .steps = steps};
}

TEST(LegacyFilter, IsTheImprovedConversionWithDeltaSplitOver26Orders) {
  // One full-batch step at sigma = 5: rho(alpha) = alpha / 50.
  const PrivacyFilter& legacy = PrivacyFilter::Legacy();
  ASSERT_EQ(legacy.parts().size(), 26u);
  double expected = INFINITY;
  for (const FilterPart& part : legacy.parts()) {
    const double alpha = part.order;
    expected = std::min(expected, alpha / 50 + std::log((alpha - 1) / alpha) +
                                      (std::log(26 / 1e-5) - std::log(alpha)) / (alpha - 1));
  }
  EXPECT_NEAR(*legacy.Epsilon(Admitted({{1.0, 5.0, 1}}), 1e-5), expected, 1e-12);
  EXPECT_EQ(*legacy.Epsilon(AdmittedMechanisms(), 1e-5), 0.0);
}

// The price of adaptivity for one sampled job on a fresh dataset: its filter level over its own
// (RDP) epsilon. The legacy filter charged the demo's job (512 of 60,000 examples, 2 epochs,
// epsilon 2 at delta 1e-5) 2.68, +34%; the fitted filter must stay within +10%.
TEST(FittedFilter, ChargesOneSampledJobWithinTenPercentOfItsOwnEpsilon) {
  struct Case {
    double q;
    int64_t steps;
    double epsilon;
    double budget;
  };
  for (const Case& c : {Case{512.0 / 60000, 234, 2.0, 8.0}, Case{512.0 / 60000, 234, 8.0, 8.0},
                        Case{2048.0 / 60000, 440, 3.0, 10.0}, Case{0.004267, 14063, 2.0, 4.0},
                        Case{0.01, 1000, 0.5, 8.0}, Case{0.01, 1000, 1.0, 1.0}}) {
    SCOPED_TRACE(testing::Message() << "q=" << c.q << " T=" << c.steps << " eps=" << c.epsilon);
    const SubsampledGaussian job = SampledJob(c.q, c.steps, c.epsilon, 1e-5);
    const PrivacyFilter filter = *PrivacyFilter::FittedTo(job, c.budget, 1e-5);
    const double charged = *filter.Epsilon(Admitted({job}), 1e-5);
    EXPECT_LE(charged, 1.10 * c.epsilon);
    EXPECT_GE(charged, c.epsilon - 1e-6);  // Never below the job's own epsilon.
    EXPECT_LT(charged, *PrivacyFilter::Legacy().Epsilon(Admitted({job}), 1e-5));
  }
}

TEST(FittedFilter, ChargesOneFullBatchJobWithinOnePercentOfItsExactEpsilon) {
  for (double epsilon : {0.5, 2.0, 8.0}) {
    const CalibratedNoise noise = *CalibrateFullBatchNoise(100, epsilon, 1e-5);
    const SubsampledGaussian job = {1.0, noise.noise_multiplier, 100};
    const PrivacyFilter filter = *PrivacyFilter::FittedTo(job, 8.0, 1e-5);
    ASSERT_EQ(filter.parts()[0].kind, Kind::kGaussian);
    const double charged = *filter.Epsilon(Admitted({job}), 1e-5);
    EXPECT_LE(charged, 1.01 * epsilon) << epsilon;
    EXPECT_GE(charged, epsilon - 1e-6) << epsilon;
  }
}

TEST(FittedFilter, HasTwoRenyiPartsAtHalfTheDeltaForASampledJob) {
  const SubsampledGaussian job = SampledJob(512.0 / 60000, 234, 2.0, 1e-5);
  const PrivacyFilter filter = *PrivacyFilter::FittedTo(job, 8.0, 1e-5);
  ASSERT_EQ(filter.parts().size(), 2u);
  EXPECT_EQ(filter.parts()[0].kind, Kind::kRenyi);
  EXPECT_EQ(filter.parts()[0].order, RdpEpsilon(job, 1e-5)->order);
  EXPECT_LT(filter.parts()[1].order, filter.parts()[0].order);  // Spending 8 wants a lower order.
  EXPECT_EQ(filter.parts()[0].delta_share + filter.parts()[1].delta_share, 1.0);
  EXPECT_EQ(filter.Describe(), "Renyi order 6.2 at delta/2 + Renyi order 3.6 at delta/2");
}

// Every part is a valid filter on its own, so a level can never be below what the admitted
// mechanisms would cost even if they had been fixed in advance; PLD is the tightest upper bound
// we have of that.
TEST(FittedFilter, NeverChargesLessThanFixedCompositionByPld) {
  const SubsampledGaussian first = SampledJob(0.02, 300, 1.0, 1e-5);
  const SubsampledGaussian full_batch = {1.0, 20.0, 50};
  for (const auto& filter : {*PrivacyFilter::FittedTo(first, 8.0, 1e-5),
                             *PrivacyFilter::FittedTo(full_batch, 8.0, 1e-5)}) {
    for (int jobs = 1; jobs <= 3; ++jobs) {
      const SubsampledGaussian all = {first.sampling_rate, first.noise_multiplier,
                                      first.steps * jobs};
      AdmittedMechanisms admitted;
      ASSERT_TRUE(admitted.Compose(all).ok());
      EXPECT_GE(*filter.Epsilon(admitted, 1e-5), PldEpsilon(all, 1e-5)->epsilon)
          << filter.Describe() << " jobs=" << jobs;
    }
    AdmittedMechanisms full;
    ASSERT_TRUE(full.Compose(full_batch).ok());
    EXPECT_GE(*filter.Epsilon(full, 1e-5), *FullBatchEpsilon(20.0, 50, 1e-5) - 1e-9);
  }
}

TEST(FittedFilter, GaussianPartGivesSampledJobsNoSubsamplingCredit) {
  const SubsampledGaussian sampled = {0.01, 1.0, 100};
  const PrivacyFilter gaussian_only = *PrivacyFilter::Parse("gaussian:1");
  EXPECT_NEAR(*gaussian_only.Epsilon(Admitted({sampled}), 1e-5), *FullBatchEpsilon(1.0, 100, 1e-5),
              1e-9);
  // Beyond mu = 1000 the part admits nothing: infinite, not an error.
  EXPECT_EQ(*gaussian_only.Epsilon(Admitted({{0.01, 0.01, 100000}}), 1e-5), INFINITY);
}

TEST(PrivacyFilter, SerializesAndParsesBack) {
  const PrivacyFilter filter =
      *PrivacyFilter::FittedTo(SampledJob(512.0 / 60000, 234, 2.0, 1e-5), 8.0, 1e-5);
  const PrivacyFilter parsed = *PrivacyFilter::Parse(filter.Serialize());
  ASSERT_EQ(parsed.parts().size(), filter.parts().size());
  for (size_t i = 0; i < parsed.parts().size(); ++i) {
    EXPECT_EQ(parsed.parts()[i].order, filter.parts()[i].order);
    EXPECT_EQ(parsed.parts()[i].delta_share, filter.parts()[i].delta_share);
  }
  EXPECT_EQ(PrivacyFilter::Parse(PrivacyFilter::Legacy().Serialize())->Describe(),
            PrivacyFilter::Legacy().Describe());
}

TEST(PrivacyFilter, ParseRefusesWhatIsNotAValidFilter) {
  for (const char* text :
       {"", "renyi:6.25:1", "renyi:6.2", "gaussian:0", "gaussian:1.5", "renyi:6.2:0.6,gaussian:0.5",
        "laplace:1", "renyi:x:1", "gaussian:nan"}) {
    const absl::Status status = PrivacyFilter::Parse(text).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << text;
  }
}

TEST(PrivacyFilter, MaxStepsIsTheLastStepTheFilterAdmits) {
  const PrivacyFilter& filter = PrivacyFilter::Legacy();
  const AdmittedMechanisms spent = Admitted({{0.01, 1.0, 200}});
  const int64_t steps = *filter.MaxSteps(spent, 0.01, 1.0, 3.0, 1e-5);
  ASSERT_GT(steps, 0);
  AdmittedMechanisms total = spent;
  ASSERT_TRUE(total.Compose({0.01, 1.0, steps}).ok());
  EXPECT_LE(*filter.Epsilon(total, 1e-5), 3.0);
  ASSERT_TRUE(total.Compose({0.01, 1.0, 1}).ok());
  EXPECT_GT(*filter.Epsilon(total, 1e-5), 3.0);
  EXPECT_EQ(*filter.MaxSteps(Admitted({{1.0, 0.1, 1}}), 0.01, 1.0, 3.0, 1e-5), 0);
  EXPECT_EQ(filter.MaxSteps(spent, 0.01, 1.0, -3.0, 1e-5).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MaxStepsOfFirstJob, IsWhatTheFilterFittedToThatJobAdmits) {
  const int64_t steps = *MaxStepsOfFirstJob(0.01, 1.0, 3.0, 1e-5);
  ASSERT_GT(steps, 0);
  auto admits = [](int64_t t) {
    const SubsampledGaussian job = {0.01, 1.0, t};
    return *PrivacyFilter::FittedTo(job, 3.0, 1e-5)->Epsilon(Admitted({job}), 1e-5) <= 3.0;
  };
  EXPECT_TRUE(admits(steps));
  EXPECT_FALSE(admits(steps + 1));
}

}  // namespace
}  // namespace dpfleet::accountant
