#include "dpctl/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/text_format.h"

namespace dpfleet::dpctl {
namespace {

std::string RunName(const v1::Job& job) {
  return job.spec().display_name().empty()
             ? job.job_id()
             : absl::StrCat(job.spec().display_name(), " (", job.job_id(), ")");
}

// The loss a reader of `history` may see: the noised one when the job releases it, else the raw
// one, which is zero throughout when the history was redacted for a caller who does not own it.
std::optional<ChartSeries> LossSeries(const JobRun& run) {
  const bool noised = run.job.spec().loss_noise_multiplier() > 0;
  ChartSeries series{absl::StrCat(RunName(run.job), noised ? " (noised)" : " (not private)"), {}};
  bool any = false;
  for (const v1::StepRecord& record : run.history.steps()) {
    const double loss = noised ? record.noised_loss() : record.loss();
    any = any || loss != 0 || record.batch_size() != 0;
    series.points.emplace_back(record.step(), loss);
  }
  if (!any) return std::nullopt;
  return series;
}

std::string BudgetBar(const v1::GetBudgetResponse& budget) {
  const double total = std::max(budget.epsilon_budget(), 1e-12);
  const double committed = std::clamp(budget.epsilon_committed(), 0.0, total);
  const double reserved =
      std::clamp(budget.epsilon_reserved() - budget.epsilon_committed(), 0.0, total - committed);
  const double width = 600;
  auto w = [&](double epsilon) { return width * epsilon / total; };
  return absl::StrFormat(
      "<h3>Budget of %s</h3>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"budget\" width=\"%d\" height=\"20\" "
      "font-family=\"sans-serif\" font-size=\"12\">"
      "<rect class=\"committed\" x=\"0\" y=\"0\" width=\"%.1f\" height=\"20\" fill=\"#D55E00\"/>"
      "<rect class=\"reserved\" x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"20\" fill=\"#E69F00\"/>"
      "<rect class=\"remaining\" x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"20\" fill=\"#ddd\"/>"
      "</svg>\n<p>committed %.4f, reserved by running jobs %.4f, remaining %.4f of epsilon %g at "
      "delta %g</p>\n",
      XmlEscape(budget.dataset()), static_cast<int>(width), w(committed), w(committed), w(reserved),
      w(committed + reserved), width - w(committed + reserved), committed, reserved,
      budget.epsilon_remaining(), budget.epsilon_budget(), budget.delta());
}

std::string RunRow(const JobRun& run) {
  const v1::Job& job = run.job;
  const bool succeeded = job.state() == v1::SUCCEEDED;
  return absl::StrFormat(
      "<tr><td>%s</td><td>%s</td><td>%s on %s</td><td>%s</td><td>%.6g</td><td>%.4f</td>"
      "<td>%g</td><td>%d</td><td>%d</td><td>%.4f</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
      XmlEscape(RunName(job)), v1::JobState_Name(job.state()), XmlEscape(job.spec().model()),
      XmlEscape(job.spec().dataset()), v1::OptimizerType_Name(job.spec().optimizer().type()),
      job.sampling_rate(), job.noise_multiplier(), job.spec().clip_norm(), job.total_steps(),
      job.spec().num_workers(), job.planned_epsilon(),
      absl::StrFormat("%.4f at %g",
                      job.result().epsilon_spent() > 0 ? job.result().epsilon_spent()
                                                       : job.progress().epsilon_spent(),
                      job.spec().delta()),
      succeeded ? absl::StrFormat("%.2f%%", 100 * job.result().test_accuracy()) : "-",
      succeeded ? absl::StrFormat("%.1f s", job.result().wall_seconds()) : "-");
}

}  // namespace

absl::StatusOr<Metric> ParseMetric(const std::string& name) {
  if (name == "epsilon") return Metric::kEpsilon;
  if (name == "loss") return Metric::kLoss;
  if (name == "accuracy") return Metric::kAccuracy;
  return absl::InvalidArgumentError(
      absl::StrCat("--metric must be one of epsilon, loss, accuracy; got '", name, "'"));
}

Chart MetricChart(const std::vector<JobRun>& runs, Metric metric) {
  Chart chart;
  chart.x_label = "step";
  switch (metric) {
    case Metric::kEpsilon:
      chart.title = "Privacy spent";
      chart.y_label = "epsilon";
      break;
    case Metric::kLoss:
      chart.title = "Training loss";
      chart.y_label = "loss";
      break;
    case Metric::kAccuracy:
      chart.title = "Test accuracy at each evaluation";
      chart.y_label = "test accuracy";
      chart.markers_only = true;
      break;
  }
  for (const JobRun& run : runs) {
    if (metric == Metric::kLoss) {
      if (std::optional<ChartSeries> loss = LossSeries(run)) chart.series.push_back(*loss);
      continue;
    }
    ChartSeries series{RunName(run.job), {}};
    if (metric == Metric::kEpsilon) {
      for (const v1::StepRecord& record : run.history.steps()) {
        series.points.emplace_back(record.step(), record.epsilon_spent());
      }
    } else {
      for (const v1::EvaluationRecord& evaluation : run.history.evaluations()) {
        series.points.emplace_back(evaluation.step(), evaluation.test_accuracy());
      }
    }
    chart.series.push_back(std::move(series));
  }
  return chart;
}

Chart FrontierChart(const std::vector<JobRun>& runs) {
  Chart chart{.title = "Accuracy against privacy spent",
              .x_label = "epsilon",
              .y_label = "test accuracy",
              .markers_only = true};
  for (const JobRun& run : runs) {
    if (run.job.state() != v1::SUCCEEDED) continue;
    chart.series.push_back(
        {RunName(run.job), {{run.job.result().epsilon_spent(), run.job.result().test_accuracy()}}});
  }
  return chart;
}

std::string HtmlReport(const std::vector<JobRun>& runs,
                       const std::vector<v1::GetBudgetResponse>& budgets,
                       const std::string& generated) {
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dpfleet report</title>\n"
      "<style>body{font-family:sans-serif;margin:2em;color:#222}"
      "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
      "th{background:#f4f4f4}.charts svg{margin:0 1em 1em 0}pre{font-size:12px}</style>\n"
      "</head><body>\n<h1>dpfleet report</h1>\n<p>",
      runs.size(), " job(s), generated ", XmlEscape(generated),
      ". Loss curves marked \"not private\" are computed on the private sample and are not "
      "covered by the DP guarantee; only a job's owner sees them.</p>\n<div class=\"charts\">\n");
  for (Metric metric : {Metric::kEpsilon, Metric::kLoss, Metric::kAccuracy}) {
    absl::StrAppend(&html, ChartSvg(MetricChart(runs, metric)));
  }
  const int succeeded = std::count_if(
      runs.begin(), runs.end(), [](const JobRun& run) { return run.job.state() == v1::SUCCEEDED; });
  if (succeeded > 1) absl::StrAppend(&html, ChartSvg(FrontierChart(runs)));
  absl::StrAppend(&html,
                  "</div>\n<h2>Jobs</h2>\n<table class=\"jobs\"><tr><th>job</th><th>state</th>"
                  "<th>model</th><th>optimizer</th><th>q</th><th>sigma</th><th>C</th>"
                  "<th>steps</th><th>workers</th><th>planned epsilon</th><th>epsilon spent</th>"
                  "<th>test accuracy</th><th>wall time</th></tr>\n");
  for (const JobRun& run : runs) absl::StrAppend(&html, RunRow(run));
  absl::StrAppend(&html, "</table>\n");
  for (const JobRun& run : runs) {
    std::string spec;
    google::protobuf::TextFormat::PrintToString(run.job.spec(), &spec);
    absl::StrAppend(&html, "<details><summary>spec of ", XmlEscape(RunName(run.job)),
                    "</summary><pre>", XmlEscape(spec), "</pre></details>\n");
    if (!run.job.error().empty()) {
      absl::StrAppend(&html, "<p>", XmlEscape(RunName(run.job)), ": ", XmlEscape(run.job.error()),
                      "</p>\n");
    }
  }
  for (const v1::GetBudgetResponse& budget : budgets) absl::StrAppend(&html, BudgetBar(budget));
  return html + "</body></html>\n";
}

}  // namespace dpfleet::dpctl
