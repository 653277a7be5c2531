#ifndef DPFLEET_DPCTL_REPORT_H_
#define DPFLEET_DPCTL_REPORT_H_

// `dpctl report` and `dpctl plot`: a job's run history as charts (dpctl/svg_chart.h), and one
// self-contained HTML page (inline SVG and CSS, nothing fetched) for one job or several.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dpctl/svg_chart.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet::dpctl {

struct JobRun {
  v1::Job job;
  v1::JobHistory history;  // Every page, joined.
};

// What `dpctl plot --metric` draws.
enum class Metric { kEpsilon, kLoss, kAccuracy };

// Returns the metric a name ("epsilon", "loss", "accuracy") names. Errors: kInvalidArgument
// listing the names.
absl::StatusOr<Metric> ParseMetric(const std::string& name);

// Returns the chart of `metric` over steps with one series per run: epsilon spent; the noised
// loss where the job releases one, else the raw loss (owner only: a run whose history was
// redacted has no loss series); test accuracy at each evaluation (markers).
Chart MetricChart(const std::vector<JobRun>& runs, Metric metric);

// Returns the privacy-utility frontier: each succeeded run's final test accuracy against the
// epsilon it spent, one marker series per run.
Chart FrontierChart(const std::vector<JobRun>& runs);

// Returns the HTML report: the charts of every metric, the frontier when several runs succeeded,
// a table of each run's spec and result (and its full spec), and each budget given as a bar of
// committed, reserved and remaining epsilon. `generated` is shown as the report's date.
std::string HtmlReport(const std::vector<JobRun>& runs,
                       const std::vector<v1::GetBudgetResponse>& budgets,
                       const std::string& generated);

}  // namespace dpfleet::dpctl

#endif  // DPFLEET_DPCTL_REPORT_H_
