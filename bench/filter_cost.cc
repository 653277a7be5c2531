// The price of adaptivity: what a dataset's privacy filter charges a job, against the job's own
// epsilon, for the legacy filter (26 Renyi orders at delta/26) and the filter fitted to the
// dataset's first job (accountant/privacy_filter.h); and how many such jobs one budget admits
// under each, against composition fixed in advance (RDP, not valid under adaptive choice).
// A plain table; deterministic (no timing).

#include <cstdint>
#include <cstdio>
#include <functional>

#include "accountant/calibration.h"
#include "accountant/gaussian.h"
#include "accountant/privacy_filter.h"
#include "accountant/rdp.h"

namespace dpfleet::accountant {
namespace {

constexpr double kDelta = 1e-5;

struct Job {
  const char* name;
  double q;
  int64_t steps;
  double epsilon;
  double budget;
};

double Charge(const PrivacyFilter& filter, const SubsampledGaussian& job, int copies) {
  AdmittedMechanisms admitted;
  for (int i = 0; i < copies; ++i) admitted.Compose(job).IgnoreError();
  return *filter.Epsilon(admitted, kDelta);
}

// The most copies n with fits(n).
int MostCopies(const std::function<bool(int)>& fits) {
  int n = 0;
  while (n < 100000 && fits(n + 1)) ++n;
  return n;
}

int Main() {
  const Job jobs[] = {
      {"demo mlp (B=512, 2 epochs)", 512.0 / 60000, 234, 2.0, 8.0},
      {"cnn_tb (B=2048, 15 epochs)", 2048.0 / 60000, 440, 3.0, 8.0},
      {"cifar-style (B=256, T=14063)", 256.0 / 60000, 14063, 2.0, 8.0},
      {"q=0.01, T=1000", 0.01, 1000, 1.0, 8.0},
      {"q=0.01, T=1000, uses the budget", 0.01, 1000, 1.0, 1.0},
      {"full batch, T=100", 1.0, 100, 2.0, 8.0},
      {"full batch, T=1", 1.0, 1, 4.0, 8.0},
  };
  std::printf(
      "delta = %g; 'own' is the job's epsilon (RDP for sampled jobs, exact for full batch)\n",
      kDelta);
  std::printf("%-34s %6s %6s | %16s %16s | %28s | %s\n", "job", "own", "budget", "legacy (26 ord.)",
              "fitted", "copies in budget fix/leg/fit", "fitted filter");
  for (const Job& job : jobs) {
    const bool full = job.q == 1.0;
    const CalibratedNoise noise =
        full ? *CalibrateFullBatchNoise(job.steps, job.epsilon, kDelta)
             : *CalibrateNoiseMultiplier(job.q, job.steps, job.epsilon, kDelta);
    const SubsampledGaussian mechanism = {job.q, noise.noise_multiplier, job.steps};
    const PrivacyFilter& legacy = PrivacyFilter::Legacy();
    const PrivacyFilter fitted = *PrivacyFilter::FittedTo(mechanism, job.budget, kDelta);
    const double own = noise.epsilon;
    const double by_legacy = Charge(legacy, mechanism, 1);
    const double by_fitted = Charge(fitted, mechanism, 1);
    const int fixed = MostCopies([&](int n) {
      const SubsampledGaussian all = {job.q, noise.noise_multiplier, job.steps * n};
      return full ? *FullBatchEpsilon(noise.noise_multiplier, all.steps, kDelta) <= job.budget
                  : RdpEpsilon(all, kDelta)->epsilon <= job.budget;
    });
    const int under_legacy =
        MostCopies([&](int n) { return Charge(legacy, mechanism, n) <= job.budget; });
    const int under_fitted =
        MostCopies([&](int n) { return Charge(fitted, mechanism, n) <= job.budget; });
    std::printf("%-34s %6.3f %6.2f | %7.3f (%+5.1f%%) %7.3f (%+5.1f%%) | %10d %6d %8d   | %s\n",
                job.name, own, job.budget, by_legacy, 100 * (by_legacy / own - 1), by_fitted,
                100 * (by_fitted / own - 1), fixed, under_legacy, under_fitted,
                fitted.Describe().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace dpfleet::accountant

int main() { return dpfleet::accountant::Main(); }
