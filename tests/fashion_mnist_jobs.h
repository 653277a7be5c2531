#ifndef DPFLEET_TESTS_FASHION_MNIST_JOBS_H_
#define DPFLEET_TESTS_FASHION_MNIST_JOBS_H_

// The small DP-SGD job the end-to-end tests run on Fashion-MNIST (60,000 training examples), and
// what its steps cost, computed with the accountant's own code.

#include <cstdint>
#include <string>

#include "accountant/privacy_filter.h"
#include "accountant/rdp.h"
#include "gtest/gtest.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet {

// The ledger and the tests run the same RDP code.
constexpr double kEpsilonTolerance = 1e-9;
constexpr double kSmallJobDelta = 1e-5;
constexpr double kSmallJobSamplingRate = 0.01;  // Expected batch 600 of 60,000.

// An MLP trained with DP-SGD for `steps` steps over `workers` workers, at sigma 1.
inline v1::JobSpec SmallJob(int64_t steps, int workers = 2) {
  v1::JobSpec spec;
  spec.set_dataset("fashion-mnist");
  spec.set_model("mlp");
  spec.mutable_optimizer()->set_type(v1::DP_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.5);
  spec.mutable_optimizer()->set_momentum(0.9);
  spec.set_expected_batch_size(600);
  spec.set_steps(steps);
  spec.set_clip_norm(1.0);
  spec.set_noise_multiplier(1.0);
  spec.set_delta(kSmallJobDelta);
  spec.set_num_workers(workers);
  spec.set_seed(42);
  return spec;
}

// The job's own epsilon after `steps` of its steps: composed with RDP.
inline double EpsilonOf(int64_t steps) {
  return accountant::RdpEpsilon(
             {.sampling_rate = kSmallJobSamplingRate, .noise_multiplier = 1.0, .steps = steps},
             kSmallJobDelta)
      ->epsilon;
}

// What a dataset whose privacy filter is `filter` (GetBudgetResponse.filter) is charged for
// `mechanism`.
inline double ChargeOf(const accountant::SubsampledGaussian& mechanism, const std::string& filter) {
  const absl::StatusOr<accountant::PrivacyFilter> parsed = accountant::PrivacyFilter::Parse(filter);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  accountant::AdmittedMechanisms admitted;
  EXPECT_TRUE(admitted.Compose(mechanism).ok());
  return *parsed->Epsilon(admitted, kSmallJobDelta);
}

// What that dataset is charged for `steps` of the small job's steps, over every job that ran them.
inline double ChargeOf(int64_t steps, const std::string& filter) {
  return ChargeOf({.sampling_rate = kSmallJobSamplingRate, .noise_multiplier = 1.0, .steps = steps},
                  filter);
}

// The filter that a dataset of budget `budget` fits to a first job of `first_steps` small-job
// steps.
inline std::string SmallJobFilter(int64_t first_steps, double budget) {
  return accountant::PrivacyFilter::FittedTo({.sampling_rate = kSmallJobSamplingRate,
                                              .noise_multiplier = 1.0,
                                              .steps = first_steps},
                                             budget, kSmallJobDelta)
      ->Serialize();
}

}  // namespace dpfleet

#endif  // DPFLEET_TESTS_FASHION_MNIST_JOBS_H_
