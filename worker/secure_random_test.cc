#include "worker/secure_random.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

TEST(SecurePoissonSample, RateMatchesQ) {
  const int64_t n = 1'000'000;
  const double q = 0.01;
  const std::vector<int64_t> sample = SecurePoissonSample(n, q);
  // Binomial(n, q): standard deviation sqrt(n q (1-q)) ~ 99.5; 6 sigma keeps the test from flaking.
  EXPECT_NEAR(static_cast<double>(sample.size()), n * q, 6 * std::sqrt(n * q * (1 - q)));
  for (size_t i = 1; i < sample.size(); ++i) ASSERT_LT(sample[i - 1], sample[i]);
  EXPECT_EQ(SecurePoissonSample(10, 1.0).size(), 10u);
}

// On one thread and split over two (the sampler's chunks run on the intra-op threads).
TEST(SecureGaussianNoise, MomentsMatchAndDrawsDiffer) {
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    const int64_t n = 1'000'000;
    const double stddev = 3.0;
    std::vector<float> a(n, 0.0f), b(n, 0.0f);
    AddSecureGaussianNoise(a.data(), n, stddev);
    AddSecureGaussianNoise(b.data(), n, stddev);
    double sum = 0, sum_sq = 0;
    for (float x : a) {
      sum += x;
      sum_sq += static_cast<double>(x) * x;
    }
    const double mean = sum / n;
    const double variance = sum_sq / n - mean * mean;
    // Standard error of the mean: stddev / sqrt(n) = 0.003; of the variance: stddev^2 sqrt(2/n) =
    // 0.0127.
    EXPECT_NEAR(mean, 0.0, 6 * 0.003) << threads << " thread(s)";
    EXPECT_NEAR(variance, stddev * stddev, 6 * 0.0127) << threads << " thread(s)";
    EXPECT_NE(a, b) << "two draws from the CSPRNG must differ";
  }
  at::set_num_threads(1);
}

}  // namespace
}  // namespace dpfleet::worker
