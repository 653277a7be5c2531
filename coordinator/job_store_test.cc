#include "coordinator/job_store.h"

#include <cstdio>

#include "coordinator/job_table.h"
#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

std::string FreshPath(const std::string& name) {
  const std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return path;
}

v1::Job NewJob(const std::string& id, int64_t total_steps) {
  v1::Job job;
  job.set_job_id(id);
  job.set_state(v1::QUEUED);
  job.set_total_steps(total_steps);
  job.mutable_spec()->set_dataset("fashion-mnist");
  return job;
}

TEST(JobTable, StateChangesAndStepLeasesSurviveARestart) {
  const std::string path = FreshPath("jobs.db");
  {
    auto store = *JobStore::Open(path);
    JobTable table(store.get());
    ASSERT_TRUE(table.Insert(NewJob("job-1", 100)).ok());
    ASSERT_TRUE(table.Insert(NewJob("job-2", 10)).ok());
    ASSERT_TRUE(table.Update("job-1", [](v1::Job& j) { j.set_state(v1::RUNNING); }).ok());
    for (int64_t step = 0; step < 40; ++step)
      ASSERT_TRUE(table.LeaseSteps("job-1", step, 100).ok());
    ASSERT_TRUE(table.LeaseSteps("job-2", 0, 10).ok());
    v1::JobRecovery recovery;
    recovery.set_checkpoint("parameters");
    recovery.set_checkpoint_step(25);
    recovery.set_attempts(2);
    v1::Reservation* reservation = recovery.add_reservations();
    reservation->set_reservation_id("r-1");
    reservation->set_steps(100);
    ASSERT_TRUE(table.SaveRecovery("job-1", recovery).ok());
    recovery.set_checkpoint_step(50);  // Replaces the first record.
    ASSERT_TRUE(table.SaveRecovery("job-1", recovery).ok());
  }
  auto store = *JobStore::Open(path);
  JobTable table(store.get());
  const std::vector<StoredJob> stored = *table.Restore();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].job.job_id(), "job-1");
  EXPECT_EQ(stored[0].job.state(), v1::RUNNING);
  // Steps 0..39 started: the bound covers them, and exceeds them by less than one lease.
  EXPECT_GE(stored[0].step_bound, 40);
  EXPECT_LE(stored[0].step_bound, 40 + JobTable::kStepLease);
  EXPECT_EQ(stored[1].step_bound, 10);  // Never beyond the steps reserved.
  EXPECT_EQ(table.Get("job-2")->spec().dataset(), "fashion-mnist");
  EXPECT_EQ(stored[0].recovery.checkpoint(), "parameters");
  EXPECT_EQ(stored[0].recovery.checkpoint_step(), 50);
  EXPECT_EQ(stored[0].recovery.reservations(0).reservation_id(), "r-1");
  EXPECT_EQ(stored[1].recovery.attempts(), 0);  // None saved.
}

TEST(JobTable, CancelRequestsSurviveARestart) {
  const std::string path = FreshPath("cancel.db");
  {
    auto store = *JobStore::Open(path);
    JobTable table(store.get());
    ASSERT_TRUE(table.Insert(NewJob("job-1", 100)).ok());
    ASSERT_TRUE(table.Insert(NewJob("job-2", 100)).ok());
    ASSERT_TRUE(table.RequestCancel("job-2").ok());
    ASSERT_TRUE(table.RequestCancel("job-2").ok());  // Asking twice is harmless.
  }
  auto store = *JobStore::Open(path);
  JobTable table(store.get());
  const std::vector<StoredJob> stored = *table.Restore();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_FALSE(stored[0].cancel_requested);
  EXPECT_TRUE(stored[1].cancel_requested);
  EXPECT_FALSE(table.CancelRequested("job-1"));
  EXPECT_TRUE(table.CancelRequested("job-2"));
}

v1::StepRecord Step(int64_t step) {
  v1::StepRecord record;
  record.set_step(step);
  record.set_epsilon_spent(0.01 * step);
  return record;
}

TEST(JobTable, HistoryUpToTheLastCheckpointSurvivesACrash) {
  const std::string path = FreshPath("history.db");
  {
    auto store = *JobStore::Open(path);
    JobTable table(store.get());
    ASSERT_TRUE(table.Insert(NewJob("job-1", 100)).ok());
    for (int64_t step = 1; step <= 40; ++step)
      ASSERT_TRUE(table.RecordStep("job-1", Step(step)).ok());
    v1::EvaluationRecord evaluation;
    evaluation.set_step(40);
    evaluation.set_test_accuracy(0.75);
    ASSERT_TRUE(table.RecordEvaluation("job-1", evaluation).ok());
    for (int64_t step = 41; step <= 50; ++step)
      ASSERT_TRUE(table.RecordStep("job-1", Step(step)).ok());
    v1::JobRecovery recovery;
    recovery.set_checkpoint_step(50);
    ASSERT_TRUE(table.SaveRecovery("job-1", recovery).ok());
    for (int64_t step = 51; step <= 60; ++step)
      ASSERT_TRUE(table.RecordStep("job-1", Step(step)).ok());
    EXPECT_EQ(table.History("job-1")->steps_size(), 60);
    EXPECT_EQ(table.Get("job-1")->progress().step(), 60);
  }  // A crash: steps 51-60 were never stored.
  {
    auto store = *JobStore::Open(path);
    JobTable table(store.get());
    ASSERT_TRUE(table.Restore().ok());
    v1::JobHistory history = *table.History("job-1");
    ASSERT_EQ(history.steps_size(), 50);
    EXPECT_EQ(history.steps(49).step(), 50);
    EXPECT_EQ(history.stride(), 1);
    ASSERT_EQ(history.evaluations_size(), 1);
    EXPECT_EQ(history.evaluations(0).test_accuracy(), 0.75);
    // The job resumes from step 30's checkpoint: its re-run replaces what came after, evaluation
    // included, and ending the job stores it.
    for (int64_t step = 31; step <= 100; ++step) {
      ASSERT_TRUE(table.RecordStep("job-1", Step(step)).ok());
    }
    ASSERT_TRUE(table.Update("job-1", [](v1::Job& j) { j.set_state(v1::SUCCEEDED); }).ok());
  }
  auto store = *JobStore::Open(path);
  const std::vector<StoredJob> stored = *store->LoadAll();
  ASSERT_EQ(stored[0].history.steps_size(), 100);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(stored[0].history.steps(i).step(), i + 1);
  EXPECT_EQ(stored[0].history.evaluations_size(), 0);
}

TEST(JobStore, UnknownJobHasNoStepBound) {
  auto store = *JobStore::Open(FreshPath("unknown.db"));
  EXPECT_EQ(store->SetStepBound("job-404", 3).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dpfleet::coordinator
