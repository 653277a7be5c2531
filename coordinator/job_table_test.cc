#include "coordinator/job_table.h"

#include <cstdlib>
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

TEST(JobTable, ADuplicateJobIdIsRefusedNeverOverwritten) {
  JobTable table;
  v1::Job first = NewJob("job-1");
  first.set_owner("alice");
  ASSERT_TRUE(table.Insert(first).ok());
  v1::Job second = NewJob("job-1");
  second.set_owner("mallory");
  EXPECT_EQ(table.Insert(second).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(table.Get("job-1")->owner(), "alice");
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

TEST(JobTable, SettlingLowersTheLeasedBoundToTheStepsThatStarted) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/settle.db";
  auto store = *JobStore::Open(path);
  {
    JobTable table(store.get());
    ASSERT_TRUE(table.Insert(NewJob("job-1")).ok());
    ASSERT_TRUE(table.LeaseSteps("job-1", 0, 100).ok());  // Steps below 32 may start.
    ASSERT_TRUE(table.LeaseSteps("job-1", 6, 100).ok());
    const absl::Status beyond = table.SettleSteps("job-1", 33);
    EXPECT_EQ(beyond.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(beyond.message().find("32"), std::string::npos) << beyond;
    ASSERT_TRUE(table.SettleSteps("job-1", 7).ok());
    // Running on leases again from where it settled.
    ASSERT_TRUE(table.LeaseSteps("job-1", 7, 100).ok());
    ASSERT_TRUE(table.SettleSteps("job-1", 8).ok());
    EXPECT_EQ(table.SettleSteps("job-2", 0).code(), absl::StatusCode::kNotFound);
  }
  JobTable restored(store.get());
  const std::vector<StoredJob> jobs = *restored.Restore();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].step_bound, 8);
}

}  // namespace
}  // namespace dpfleet::coordinator
