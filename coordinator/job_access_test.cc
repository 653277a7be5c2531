#include "coordinator/job_access.h"

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

v1::Job AlicesJob() {
  v1::Job job;
  job.set_job_id("job-1");
  job.set_owner("alice");
  job.mutable_progress()->set_step(7);
  job.mutable_progress()->set_loss(0.42);
  job.mutable_progress()->set_batch_size(611);
  job.mutable_progress()->set_noised_loss(0.45);
  job.mutable_progress()->set_non_finite_examples(2);
  return job;
}

const Principal kAlice{"alice", Role::kSubmitter};
const Principal kBob{"bob", Role::kSubmitter};
const Principal kOps{"ops", Role::kAdmin};
const Principal kDashboard{"dashboard", Role::kReader};
const Principal kWorker{"worker-0", Role::kWorker};

TEST(JobAccess, OwnersAdminsAndReadersReadOthersDoNot) {
  for (const Principal& allowed : {kAlice, kOps, kDashboard}) {
    EXPECT_TRUE(CheckCanRead(allowed, AlicesJob()).ok()) << allowed.name;
  }
  for (const Principal& denied : {kBob, kWorker}) {
    const absl::Status status = CheckCanRead(denied, AlicesJob());
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << denied.name;
    EXPECT_NE(status.message().find("belongs to 'alice'"), std::string::npos) << status;
  }
}

TEST(JobAccess, OnlyTheOwnerAndAdminsCancel) {
  EXPECT_TRUE(CheckCanCancel(kAlice, AlicesJob()).ok());
  EXPECT_TRUE(CheckCanCancel(kOps, AlicesJob()).ok());
  for (const Principal& denied : {kBob, kDashboard, kWorker}) {
    EXPECT_EQ(CheckCanCancel(denied, AlicesJob()).code(), absl::StatusCode::kPermissionDenied);
  }
  // A reader named like the owner is still not the owner.
  EXPECT_EQ(CheckCanCancel({"alice", Role::kReader}, AlicesJob()).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(JobAccess, OnlyTheOwnerSeesTheDiagnosticsOfThePrivateSample) {
  EXPECT_EQ(AsSeenBy(kAlice, AlicesJob()).progress().loss(), 0.42);
  EXPECT_EQ(AsSeenBy(kAlice, AlicesJob()).progress().batch_size(), 611);
  for (const Principal& other : {kOps, kDashboard}) {
    const v1::Job seen = AsSeenBy(other, AlicesJob());
    EXPECT_EQ(seen.progress().loss(), 0.0);
    EXPECT_EQ(seen.progress().batch_size(), 0);
    EXPECT_EQ(seen.progress().non_finite_examples(), 0);
    EXPECT_EQ(seen.progress().step(), 7);
    EXPECT_EQ(seen.progress().noised_loss(), 0.45);  // Covered by DP: everyone's to read.
  }
}

TEST(JobAccess, OnlyTheOwnerSeesTheDiagnosticsInTheHistory) {
  v1::JobHistory history;
  v1::StepRecord* record = history.add_steps();
  record->set_step(7);
  record->set_loss(0.42);
  record->set_batch_size(611);
  record->set_non_finite_examples(2);
  record->set_noised_loss(0.45);
  record->set_epsilon_spent(0.3);
  history.add_evaluations()->set_test_accuracy(0.8);
  EXPECT_EQ(AsSeenBy(kAlice, AlicesJob(), history).steps(0).loss(), 0.42);
  for (const Principal& other : {kOps, kDashboard}) {
    const v1::JobHistory seen = AsSeenBy(other, AlicesJob(), history);
    EXPECT_EQ(seen.steps(0).loss(), 0.0);
    EXPECT_EQ(seen.steps(0).batch_size(), 0);
    EXPECT_EQ(seen.steps(0).non_finite_examples(), 0);
    EXPECT_EQ(seen.steps(0).noised_loss(), 0.45);
    EXPECT_EQ(seen.steps(0).epsilon_spent(), 0.3);
    EXPECT_EQ(seen.evaluations(0).test_accuracy(), 0.8);  // The test split is not private.
  }
}

}  // namespace
}  // namespace dpfleet::coordinator
