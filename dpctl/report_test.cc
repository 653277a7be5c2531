#include "dpctl/report.h"

#include "gtest/gtest.h"

namespace dpfleet::dpctl {
namespace {

JobRun SampleRun(const std::string& id, double accuracy, double epsilon, bool owner) {
  JobRun run;
  run.job.set_job_id(id);
  run.job.set_state(v1::SUCCEEDED);
  run.job.mutable_spec()->set_model("cnn_tb");
  run.job.mutable_spec()->set_dataset("fashion-mnist");
  run.job.mutable_result()->set_test_accuracy(accuracy);
  run.job.mutable_result()->set_epsilon_spent(epsilon);
  for (int step = 1; step <= 50; ++step) {
    v1::StepRecord* record = run.history.add_steps();
    record->set_step(step);
    record->set_epsilon_spent(epsilon * step / 50);
    if (owner) {
      record->set_loss(2.0 / step);
      record->set_batch_size(600);
    }
  }
  for (int step : {25, 50}) {
    v1::EvaluationRecord* evaluation = run.history.add_evaluations();
    evaluation->set_step(step);
    evaluation->set_test_accuracy(accuracy * step / 50);
  }
  return run;
}

TEST(ParseMetric, NamesTheChoices) {
  EXPECT_EQ(*ParseMetric("loss"), Metric::kLoss);
  const absl::Status bad = ParseMetric("accuracy-vs-time").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("epsilon, loss, accuracy"), std::string::npos);
}

TEST(MetricChart, OneSeriesPerRunAndNoLossForARedactedHistory) {
  const std::vector<JobRun> runs = {SampleRun("job-1", 0.8, 2.0, true),
                                    SampleRun("job-2", 0.85, 3.0, false)};
  const Chart epsilon = MetricChart(runs, Metric::kEpsilon);
  ASSERT_EQ(epsilon.series.size(), 2u);
  EXPECT_EQ(epsilon.series[1].points.back(), std::make_pair(50.0, 3.0));
  const Chart loss = MetricChart(runs, Metric::kLoss);
  ASSERT_EQ(loss.series.size(), 1u);  // job-2's reader saw no raw loss.
  EXPECT_EQ(loss.series[0].name, "job-1 (not private)");
  const Chart accuracy = MetricChart(runs, Metric::kAccuracy);
  EXPECT_TRUE(accuracy.markers_only);
  EXPECT_EQ(accuracy.series[0].points.size(), 2u);
  const Chart frontier = FrontierChart(runs);
  EXPECT_EQ(frontier.series[1].points[0], std::make_pair(3.0, 0.85));
}

TEST(HtmlReport, IsSelfContainedWithChartsTableAndBudget) {
  JobRun failed = SampleRun("job-3", 0, 1.0, true);
  failed.job.set_state(v1::FAILED);
  failed.job.set_error("worker <w-1> died");
  v1::GetBudgetResponse budget;
  budget.set_dataset("fashion-mnist");
  budget.set_epsilon_budget(10);
  budget.set_epsilon_committed(5);
  budget.set_epsilon_reserved(6);
  budget.set_epsilon_remaining(4);
  const std::string html =
      HtmlReport({SampleRun("job-1", 0.8, 2.0, true), SampleRun("job-2", 0.85, 3.0, true), failed},
                 {budget}, "today");
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // Only the namespace.
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("Accuracy against privacy spent"), std::string::npos);  // Two succeeded.
  EXPECT_NE(html.find("data-series=\"job-2\" data-points=\"50\""), std::string::npos);
  EXPECT_NE(html.find("<td>85.00%</td>"), std::string::npos);
  EXPECT_NE(html.find("worker &lt;w-1&gt; died"), std::string::npos);
  EXPECT_NE(html.find("class=\"committed\" x=\"0\" y=\"0\" width=\"300.0\""), std::string::npos);
  EXPECT_NE(html.find("class=\"reserved\" x=\"300.0\" y=\"0\" width=\"60.0\""), std::string::npos);
  EXPECT_NE(html.find("model: &quot;cnn_tb&quot;"), std::string::npos);  // The full spec.
}

}  // namespace
}  // namespace dpfleet::dpctl
