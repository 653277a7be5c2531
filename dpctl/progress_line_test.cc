#include "dpctl/progress_line.h"

#include "gtest/gtest.h"

namespace dpfleet::dpctl {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

TEST(StepRate, MeasuresOverTheWindowAndRestartsWhenTheJobResumes) {
  StepRate rate(/*window=*/3);
  EXPECT_FALSE(rate.StepsPerSecond());
  rate.Observe(0, kStart);
  rate.Observe(0, kStart + absl::Seconds(5));  // A snapshot without a step.
  EXPECT_FALSE(rate.StepsPerSecond());
  rate.Observe(10, kStart + absl::Seconds(10));
  EXPECT_DOUBLE_EQ(*rate.StepsPerSecond(), 1.0);
  rate.Observe(20, kStart + absl::Seconds(12));
  rate.Observe(30, kStart + absl::Seconds(14));  // The window drops step 0.
  EXPECT_DOUBLE_EQ(*rate.StepsPerSecond(), 5.0);
  EXPECT_EQ(*rate.Remaining(130), absl::Seconds(20));
  rate.Observe(25, kStart + absl::Seconds(20));  // Resumed from a checkpoint.
  EXPECT_FALSE(rate.StepsPerSecond());
}

TEST(Clock, ShowsHoursOnlyWhenThereAreSome) {
  EXPECT_EQ(Clock(absl::Seconds(65)), "1:05");
  EXPECT_EQ(Clock(absl::Seconds(3 * 3600 + 61)), "3:01:01");
  EXPECT_EQ(Clock(-absl::Seconds(3)), "0:00");
}

TEST(ProgressLine, ShowsBarStepsEpsilonRateAndEta) {
  v1::Job job;
  job.set_state(v1::RUNNING);
  job.set_total_steps(200);
  job.set_planned_epsilon(3.0);
  job.set_sampling_rate(0.01);
  job.set_dataset_size(60000);  // 600 examples per step expected.
  job.mutable_progress()->set_step(50);
  job.mutable_progress()->set_epsilon_spent(1.25);
  StepRate rate;
  EXPECT_EQ(ProgressLine(job, rate, 80).find("ex/s"), std::string::npos);  // No rate yet.
  rate.Observe(40, kStart);
  rate.Observe(50, kStart + absl::Seconds(5));
  const std::string line = ProgressLine(job, rate, 100);
  EXPECT_NE(line.find("RUNNING"), std::string::npos) << line;
  EXPECT_NE(line.find(" 25% 50/200"), std::string::npos) << line;
  EXPECT_NE(line.find("eps 1.250/3.000"), std::string::npos) << line;
  EXPECT_NE(line.find("1200 ex/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 1:15"), std::string::npos) << line;  // 150 steps at 2 per second.
  EXPECT_LE(line.size(), 100u);
  const size_t open = line.find('['), close = line.find(']');
  const std::string bar = line.substr(open + 1, close - open - 1);
  EXPECT_EQ(std::count(bar.begin(), bar.end(), '#'), static_cast<long>(bar.size() / 4));
}

}  // namespace
}  // namespace dpfleet::dpctl
