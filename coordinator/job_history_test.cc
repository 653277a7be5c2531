#include "coordinator/job_history.h"

#include "gtest/gtest.h"

namespace dpfleet::coordinator {
namespace {

v1::StepRecord Step(int64_t step) {
  v1::StepRecord record;
  record.set_step(step);
  return record;
}

TEST(JobHistory, ALongJobIsDecimatedEvenlyAndKeepsItsLastStep) {
  EXPECT_EQ(HistoryStride(1), 1);
  EXPECT_EQ(HistoryStride(kMaxHistoryPoints), 1);
  EXPECT_EQ(HistoryStride(kMaxHistoryPoints + 1), 2);
  const int64_t total = 3 * kMaxHistoryPoints + 7;
  v1::JobHistory history;
  for (int64_t step = 1; step <= total; ++step) AddStepRecord(Step(step), total, history);
  EXPECT_EQ(history.stride(), 4);
  EXPECT_LE(history.steps_size(), kMaxHistoryPoints + 1);
  EXPECT_EQ(history.steps(0).step(), 4);
  EXPECT_EQ(history.steps(1).step(), 8);
  EXPECT_EQ(history.steps(history.steps_size() - 1).step(), total);
}

TEST(JobHistory, ARerunReplacesTheAbandonedAttemptsRecords) {
  v1::JobHistory history;
  for (int64_t step = 1; step <= 10; ++step) AddStepRecord(Step(step), 100, history);
  v1::EvaluationRecord evaluation;
  evaluation.set_step(4);
  AddEvaluation(evaluation, history);
  evaluation.set_step(8);
  EXPECT_EQ(AddEvaluation(evaluation, history), 8);
  EXPECT_EQ(history.evaluations_size(), 2);
  // Resuming from step 5's checkpoint: step 6 runs again.
  EXPECT_EQ(AddStepRecord(Step(6), 100, history), 6);
  ASSERT_EQ(history.steps_size(), 6);
  EXPECT_EQ(history.steps(5).step(), 6);
  ASSERT_EQ(history.evaluations_size(), 1);
  EXPECT_EQ(history.evaluations(0).step(), 4);
  // A step that is not kept and replaces nothing changes nothing.
  v1::JobHistory sparse;
  EXPECT_EQ(AddStepRecord(Step(1), 10 * kMaxHistoryPoints, sparse), -1);
  EXPECT_EQ(sparse.steps_size(), 0);
}

TEST(JobHistory, PagesCoverEveryRecordOnceWithEvaluationsFirst) {
  v1::JobHistory history;
  for (int64_t step = 1; step <= 2500; ++step) AddStepRecord(Step(step), 2500, history);
  v1::EvaluationRecord evaluation;
  evaluation.set_step(2500);
  AddEvaluation(evaluation, history);
  v1::GetJobHistoryRequest request;
  request.set_job_id("job-1");
  int64_t seen = 0, pages = 0;
  do {
    const v1::JobHistory page = *HistoryPage(history, request);
    EXPECT_EQ(page.job_id(), "job-1");
    EXPECT_EQ(page.evaluations_size(), pages == 0 ? 1 : 0);
    for (const v1::StepRecord& record : page.steps()) EXPECT_EQ(record.step(), ++seen);
    request.set_start_index(page.next_start_index());
    ++pages;
  } while (request.start_index() != 0);
  EXPECT_EQ(seen, 2500);
  EXPECT_EQ(pages, 3);  // The default page is 1000 records.
  request.set_page_size(1 << 30);
  EXPECT_EQ(HistoryPage(history, request)->steps_size(), 2500);  // Capped at kMaxHistoryPoints.
  request.set_page_size(-1);
  EXPECT_EQ(HistoryPage(history, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_page_size(0);
  request.set_start_index(99999);  // Beyond the end: an empty last page.
  EXPECT_EQ(HistoryPage(history, request)->steps_size(), 0);
  EXPECT_EQ(HistoryPage(history, request)->next_start_index(), 0);
}

}  // namespace
}  // namespace dpfleet::coordinator
