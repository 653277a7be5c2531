#include "coordinator/job_table.h"

#include <thread>

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

v1::Job NewJob(const std::string& id) {
  v1::Job job;
  job.set_job_id(id);
  job.set_state(v1::QUEUED);
  return job;
}

TEST(JobTable, WatchersSeeEveryUpdate) {
  JobTable table;
  ASSERT_TRUE(table.Insert(NewJob("job-1")).ok());
  auto [first, version] = *table.WaitForChange("job-1", 0, absl::Seconds(1));
  EXPECT_EQ(first.state(), v1::QUEUED);
  std::thread updater([&] {
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(table.Update("job-1", [](v1::Job& j) { j.set_state(v1::RUNNING); }).ok());
  });
  auto [second, next_version] = *table.WaitForChange("job-1", version, absl::Seconds(10));
  updater.join();
  EXPECT_GT(next_version, version);
  EXPECT_EQ(second.state(), v1::RUNNING);
  // No change: the wait times out with the same version.
  EXPECT_EQ(table.WaitForChange("job-1", next_version, absl::Milliseconds(10))->second,
            next_version);
}

TEST(JobTable, CancelOnlyWhileRunning) {
  JobTable table;
  ASSERT_TRUE(table.Insert(NewJob("job-1")).ok());
  EXPECT_FALSE(table.CancelRequested("job-1"));
  ASSERT_TRUE(table.RequestCancel("job-1").ok());
  EXPECT_TRUE(table.CancelRequested("job-1"));
  ASSERT_TRUE(table.Update("job-1", [](v1::Job& j) { j.set_state(v1::CANCELLED); }).ok());
  EXPECT_EQ(table.RequestCancel("job-1").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(table.RequestCancel("job-2").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table.Get("job-2").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dpfleet::coordinator
