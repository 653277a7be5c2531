// dpctl: the command-line client of dpfleet. `dpctl help` lists the commands.

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "accountant/accounting.h"
#include "accountant/pld.h"
#include "accountant/privacy_filter.h"
#include "common/grpc_status.h"
#include "common/serve.h"
#include "common/status.h"
#include "common/tls.h"
#include "dpctl/args.h"
#include "dpctl/job_spec_args.h"
#include "dpctl/progress_line.h"
#include "dpctl/report.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/dpfleet.grpc.pb.h"
#include "proto/health.grpc.pb.h"

namespace dpfleet::dpctl {
namespace {

constexpr char kHelp[] = R"(dpctl: submit and watch differentially private training jobs.

Jobs (coordinator at --coordinator or $DPFLEET_COORDINATOR):
  dpctl submit [--spec FILE]  (a JobSpec in protobuf text format, e.g. recipes/*.textproto;
                               the flags below override its fields)
               --dataset NAME
               --model linear|mlp|cnn_tb|wrn16_4|eq_cnn|eq_resnet9|scatter_linear|scatter_cnn
               --clip-norm C --delta D
               (--batch-size B | --sampling-rate Q | --full-batch) (--steps T | --epochs E)
               (--noise-multiplier S | --target-epsilon E)
               [--optimizer sgd|adam|lamb] [--learning-rate LR] [--momentum M] [--weight-decay W]
               [--schedule constant|cosine] [--warmup-steps N] [--ema-decay D]
               [--clipping flat|per-layer] [--automatic-clipping] [--loss softmax|sigmoid]
               [--zero-init-head] [--low-memory-clipping]
               [--augmentations K [--crop-padding P] [--no-flip]]  (mean gradient over K random
                               views per example, clipped as one; default crops padded by 4 and flips)
               [--loss-noise-multiplier S --loss-clip L]  (show a DP noised loss instead of the
                                                            owner-only raw one; accounted too)
               [--evaluate-every N]  (test accuracy every N steps, shown by history and report)
               [--workers N] [--seed S] [--micro-batch-size M] [--name TEXT] [--watch] [--json]
  dpctl watch JOB_ID [--json]  live progress until the job ends (exit 0 only if it succeeded): on a
                            terminal one updating line (bar, step/total, epsilon spent of planned,
                            examples/s, ETA), else a line per 10%; --json: one JSON object per event
  dpctl get JOB_ID [--json]
  dpctl jobs [--json]
  dpctl cancel JOB_ID [--json]
  dpctl history JOB_ID [--json]   the job's kept step records and evaluations
  dpctl report JOB_ID... --out FILE.html   one self-contained page: epsilon, loss and accuracy
                            charts, the accuracy-vs-epsilon frontier, each job's spec and result, and
                            the budgets of their datasets (when the accountant's address is known)
  dpctl plot JOB_ID... --metric epsilon|loss|accuracy --out FILE.svg|FILE.png
                            (PNG through headless Chromium: $DPFLEET_CHROMIUM, default chromium)
  dpctl workers [--json]    registered workers; prints "N alive" last

Budgets (accountant at --accountant-address or $DPFLEET_ACCOUNTANT):
  dpctl register-dataset NAME --epsilon E --delta D [--json]  (admin; grants the admin access)
  dpctl grant NAME PRINCIPAL [--json]   admin: lets PRINCIPAL (a certificate name) submit jobs on NAME
  dpctl revoke NAME PRINCIPAL [--json]  admin: no longer (its running jobs go on)
  dpctl budget NAME [--json]

Health (grpc.health.v1, plaintext, on the servers' --health_listen ports):
  dpctl health HOST:PORT... [--wait SECONDS] [--json]   exit 0 once every server reports SERVING

Every call to a server is mutual TLS: dpctl presents the certificate --tls-cert (or
$DPFLEET_TLS_CERT) with its key --tls-key ($DPFLEET_TLS_KEY), and trusts the cluster CA --tls-ca
($DPFLEET_TLS_CA). The certificate's role decides what dpctl may do (admin, submitter, reader).

Privacy math, offline:
  dpctl privacy epsilon --sampling-rate Q --noise-multiplier S --steps T --delta D
                        [--accountant auto|rdp|pld|exact] [--json]
  dpctl privacy noise --sampling-rate Q --steps T --delta D --target-epsilon E
                      [--accountant auto|rdp|pld|exact] [--json]
  (auto: exact for --sampling-rate 1, RDP otherwise; pld is the tightest for sampled jobs)

Exit codes:
  0  success
  1  the job watched did not succeed (FAILED or CANCELLED), or a server is not SERVING (health)
  2  usage: an unknown command or flag, a bad or missing value, an unreadable spec file
  3  refused by the server (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED,
     RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ...; the code and message are printed)
  4  no answer: a server unavailable or past its deadline (UNAVAILABLE, DEADLINE_EXCEEDED)
  5  a local failure: the output file cannot be written, or Chromium failed to draw the PNG
)";

enum ExitCode : int {
  kSuccess = 0,
  kJobDidNotSucceed = 1,
  kUsage = 2,
  kRefused = 3,
  kNoAnswer = 4,
  kLocalFailure = 5,
};

#define DPCTL_ASSIGN_OR_FAIL(lhs, expr)               \
  auto lhs##_or = (expr);                             \
  if (!lhs##_or.ok()) return Fail(lhs##_or.status()); \
  auto lhs = *std::move(lhs##_or)

int Fail(const absl::Status& status, ExitCode code = kUsage) {
  std::cerr << "dpctl: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return code;
}

// A failed call to a server: refused, or not answered.
int FailCall(const grpc::Status& status) {
  const absl::Status failure = FromGrpcStatus(status);
  const bool no_answer = absl::IsUnavailable(failure) || absl::IsDeadlineExceeded(failure);
  return Fail(failure, no_answer ? kNoAnswer : kRefused);
}

// Returns --flag, or the environment variable `env` when the flag is absent.
std::string FlagOrEnv(Args& args, const std::string& flag, const char* env) {
  std::string address = *args.String(flag);
  if (address.empty() && std::getenv(env) != nullptr) address = std::getenv(env);
  return address;
}

// A mutual-TLS channel to the server at --flag (or $env), which must hold a certificate of
// `server_role`.
absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(Args& args, const std::string& flag,
                                                       const char* env, Role server_role) {
  const std::string address = FlagOrEnv(args, flag, env);
  if (address.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no address: pass --", flag, " or set ", env,
                                                   " (deploy/local_cluster.sh env prints it)"));
  }
  const absl::StatusOr<TlsMaterial> tls =
      LoadTls({.ca_cert = FlagOrEnv(args, "tls-ca", "DPFLEET_TLS_CA"),
               .cert = FlagOrEnv(args, "tls-cert", "DPFLEET_TLS_CERT"),
               .key = FlagOrEnv(args, "tls-key", "DPFLEET_TLS_KEY")},
              "--tls-");
  if (!tls.ok()) {
    return Annotate(tls.status(),
                    "dpctl's certificate (--tls-ca/--tls-cert/--tls-key or "
                    "$DPFLEET_TLS_CA/_CERT/_KEY)");
  }
  return MutualTlsChannel(address, *tls, server_role);
}

std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline = absl::Seconds(60)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return context;
}

std::string Json(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// Columns of the terminal on stdout; 100 when it does not say.
int TerminalWidth() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 100;
}

std::string StateName(v1::JobState state) { return v1::JobState_Name(state); }

// A step's loss as dpctl shows it (`record` a JobProgress or a StepRecord of a job of `spec`): the
// noised one (covered by DP) when the job releases one, else the raw diagnostic, which only the
// job's owner is served.
template <typename Record>
std::string ShownLoss(const v1::JobSpec& spec, const Record& record) {
  if (spec.loss_noise_multiplier() > 0) {
    return absl::StrFormat("noised loss %.4f", record.noised_loss());
  }
  return absl::StrFormat("loss %.4f (not private)", record.loss());
}

void PrintJob(const v1::Job& job) {
  std::cout << absl::StrFormat("%s  %-9s  %s on %s, %d worker(s)\n", job.job_id(),
                               StateName(job.state()), job.spec().model(), job.spec().dataset(),
                               job.spec().num_workers());
  std::cout << absl::StrFormat(
      "  plan: q=%.6g  sigma=%.4f  steps=%d  planned epsilon=%.4f at delta=%g\n",
      job.sampling_rate(), job.noise_multiplier(), job.total_steps(), job.planned_epsilon(),
      job.spec().delta());
  if (job.state() == v1::RUNNING || job.progress().step() > 0) {
    std::cout << absl::StrFormat(
        "  progress: step %d/%d  %s  epsilon spent %.4f\n", job.progress().step(),
        job.total_steps(), ShownLoss(job.spec(), job.progress()), job.progress().epsilon_spent());
  }
  if (job.state() == v1::SUCCEEDED) {
    std::cout << absl::StrFormat(
        "  result: test accuracy %.2f%%  epsilon %.4f at delta %g  (%d steps, %.1f s)\n",
        100 * job.result().test_accuracy(), job.result().epsilon_spent(), job.result().delta(),
        job.result().steps_run(), job.result().wall_seconds());
  }
  const bool stopped_early = job.state() == v1::FAILED || job.state() == v1::CANCELLED;
  if (job.result().steps_charged() != job.result().steps_run() ||
      (stopped_early && job.result().steps_charged() > 0)) {
    // Steps leased to the workers count as run, whether or not they did.
    std::cout << absl::StrFormat("  charged: %d steps (%d ran), epsilon %.4f at delta %g\n",
                                 job.result().steps_charged(), job.result().steps_run(),
                                 job.result().epsilon_spent(), job.result().delta());
  }
  if (!job.error().empty()) std::cout << "  error: " << job.error() << "\n";
}

int Watch(v1::JobService::Stub& jobs, const std::string& job_id, bool json) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto context = Context(absl::Hours(24 * 30));
  auto reader = jobs.WatchJob(context.get(), request);
  const bool tty = isatty(STDOUT_FILENO) && !json;
  v1::JobEvent event;
  int last_percent_printed = -1;
  StepRate rate;
  v1::Job last;
  while (reader->Read(&event)) {
    last = event.job();
    rate.Observe(last.progress().step(), absl::Now());
    if (json) {
      std::cout << Json(last) << "\n" << std::flush;  // The snapshot after the event.
      continue;
    }
    const v1::JobProgress& p = last.progress();
    const int64_t total = std::max<int64_t>(1, last.total_steps());
    const int percent = static_cast<int>(100 * p.step() / total);
    if (tty) {
      // \r and clear to the end of the line: the line redraws in place.
      std::cout << "\r" << ProgressLine(last, rate, TerminalWidth()) << "\x1b[K" << std::flush;
    } else if (percent / 10 != last_percent_printed / 10 || last.state() != v1::RUNNING) {
      last_percent_printed = percent;
      std::cout << absl::StrFormat("%-9s step %d/%d (%d%%)  %s  epsilon spent %.4f\n",
                                   StateName(last.state()), p.step(), total, percent,
                                   ShownLoss(last.spec(), p), p.epsilon_spent());
    }
  }
  const grpc::Status status = reader->Finish();
  if (tty) std::cout << "\n";
  if (!status.ok()) return FailCall(status);
  if (!json) PrintJob(last);
  return last.state() == v1::SUCCEEDED ? kSuccess : kJobDidNotSucceed;
}

// Fills `history` with every page of the job's history, joined; returns the first failed call.
grpc::Status FetchHistory(v1::JobService::Stub& jobs, const std::string& job_id,
                          v1::JobHistory& history) {
  v1::GetJobHistoryRequest request;
  request.set_job_id(job_id);
  do {
    v1::JobHistory page;
    if (grpc::Status call = jobs.GetJobHistory(Context().get(), request, &page); !call.ok()) {
      return call;
    }
    const int64_t next = page.next_start_index();
    if (request.start_index() == 0) {
      history = std::move(page);
    } else {
      history.mutable_steps()->MergeFrom(page.steps());
    }
    request.set_start_index(next);
  } while (request.start_index() != 0);
  history.clear_next_start_index();
  return grpc::Status::OK;
}

// Runs `argv` (searched in $PATH), its output discarded; returns OK if it exited with 0.
absl::Status RunProgram(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t child = fork();
  if (child < 0) return absl::InternalError("fork failed");
  if (child == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(argv[0], WIFEXITED(status) && WEXITSTATUS(status) == 127
                                ? " was not found (install chromium, or set $DPFLEET_CHROMIUM)"
                                : " failed"));
}

// Draws `svg` (width x height) into the PNG file `path` with headless Chromium.
absl::Status RenderPng(const std::string& svg, int width, int height, const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove(path, ignored);  // So that an old file cannot pass for the new one.
  char directory[] = "/tmp/dpctl-plot-XXXXXX";
  if (mkdtemp(directory) == nullptr) return absl::InternalError("cannot make a temporary folder");
  const std::string page = absl::StrCat(directory, "/chart.svg");
  absl::Status drawn = WriteFileAtomically(page, svg);
  const char* chromium = std::getenv("DPFLEET_CHROMIUM");
  if (drawn.ok()) {
    drawn = RunProgram({chromium != nullptr ? chromium : "chromium", "--headless", "--no-sandbox",
                        "--disable-gpu", absl::StrCat("--user-data-dir=", directory, "/profile"),
                        absl::StrCat("--screenshot=", std::filesystem::absolute(path).string()),
                        absl::StrCat("--window-size=", width, ",", height),
                        absl::StrCat("file://", page)});
  }
  std::filesystem::remove_all(directory);
  if (drawn.ok() && !std::filesystem::exists(path)) {
    return absl::InternalError(absl::StrCat("Chromium exited without writing ", path));
  }
  return drawn;
}

void PrintWrote(const std::string& path, bool json) {
  if (json) {
    std::cout << absl::StrFormat("{\"wrote\": \"%s\"}\n", absl::CEscape(path));
  } else {
    std::cout << "wrote " << path << "\n";
  }
}

// history, report and plot: what the coordinator kept of jobs' runs.
int HistoryCommand(Args& args, const std::string& command) {
  const bool json = args.Bool("json");
  // Each command reads only its own flags, so that any other is refused as unknown.
  std::string out, metric_name, accountant_address;
  if (command != "history") out = *args.String("out");
  if (command == "plot") metric_name = *args.String("metric");
  if (command == "report") {
    accountant_address = FlagOrEnv(args, "accountant-address", "DPFLEET_ACCOUNTANT");
  }
  DPCTL_ASSIGN_OR_FAIL(channel,
                       Channel(args, "coordinator", "DPFLEET_COORDINATOR", Role::kCoordinator));
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  const std::vector<std::string> job_ids(args.positional().begin() + 1, args.positional().end());
  if (job_ids.empty() || (command == "history" && job_ids.size() != 1)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat(command, " needs ", command == "history" ? "a JOB_ID" : "JOB_IDs")));
  }
  if (command != "history" && out.empty()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(command, " needs --out FILE")));
  }
  auto jobs = v1::JobService::NewStub(channel);
  std::vector<JobRun> runs;
  for (const std::string& job_id : job_ids) {
    JobRun run;
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    if (grpc::Status got = jobs->GetJob(Context().get(), request, &run.job); !got.ok()) {
      return FailCall(got);
    }
    if (grpc::Status got = FetchHistory(*jobs, job_id, run.history); !got.ok()) {
      return FailCall(got);
    }
    runs.push_back(std::move(run));
  }
  if (command == "history") {
    const v1::JobHistory& history = runs[0].history;
    if (json) {
      std::cout << Json(history) << "\n";
      return kSuccess;
    }
    std::cout << absl::StrFormat("%s: %d step record(s), one every %d step(s); %d evaluation(s)\n",
                                 job_ids[0], history.steps_size(), history.stride(),
                                 history.evaluations_size());
    for (const v1::StepRecord& r : history.steps()) {
      std::cout << absl::StrFormat("  step %6d  epsilon %.4f  %s  %.3f s  %.0f ex/s\n", r.step(),
                                   r.epsilon_spent(), ShownLoss(runs[0].job.spec(), r),
                                   r.step_seconds(), r.examples_per_second());
    }
    for (const v1::EvaluationRecord& e : history.evaluations()) {
      std::cout << absl::StrFormat(
          "  evaluation at step %d: test accuracy %.2f%% (%d examples), "
          "epsilon %.4f\n",
          e.step(), 100 * e.test_accuracy(), e.test_examples(), e.epsilon_spent());
    }
    return kSuccess;
  }
  if (command == "plot") {
    DPCTL_ASSIGN_OR_FAIL(metric, ParseMetric(metric_name));
    const Chart chart = MetricChart(runs, metric);
    const absl::Status written =
        absl::EndsWith(out, ".png") ? RenderPng(ChartSvg(chart), chart.width, chart.height, out)
        : absl::EndsWith(out, ".svg")
            ? WriteFileAtomically(out, ChartSvg(chart))
            : absl::InvalidArgumentError(absl::StrCat("--out must end in .svg or .png: ", out));
    if (!written.ok())
      return Fail(written, absl::IsInvalidArgument(written) ? kUsage : kLocalFailure);
    PrintWrote(out, json);
    return kSuccess;
  }
  std::vector<v1::GetBudgetResponse> budgets;
  if (accountant_address.empty()) {
    std::cerr << "dpctl: no accountant address (--accountant-address or $DPFLEET_ACCOUNTANT): "
                 "the report shows no budget\n";
  } else {
    DPCTL_ASSIGN_OR_FAIL(accountant_channel, Channel(args, "accountant-address",
                                                     "DPFLEET_ACCOUNTANT", Role::kAccountant));
    auto accountant = v1::AccountantService::NewStub(accountant_channel);
    std::set<std::string> datasets;
    for (const JobRun& run : runs) datasets.insert(run.job.spec().dataset());
    for (const std::string& dataset : datasets) {
      v1::GetBudgetRequest request;
      request.set_dataset(dataset);
      v1::GetBudgetResponse budget;
      const grpc::Status status = accountant->GetBudget(Context().get(), request, &budget);
      if (!status.ok()) return FailCall(status);
      budgets.push_back(std::move(budget));
    }
  }
  const absl::Status written = WriteFileAtomically(
      out, HtmlReport(runs, budgets,
                      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::Now(), absl::UTCTimeZone())));
  if (!written.ok()) return Fail(written, kLocalFailure);
  PrintWrote(out, json);
  return kSuccess;
}

// Builds a job spec from submit's flags. Which of each exclusive group (batching, duration,
// privacy) is missing or out of range is left to the coordinator's validation, which names the
// field.
int Submit(Args& args) {
  DPCTL_ASSIGN_OR_FAIL(spec, JobSpecFromArgs(args));
  const bool watch = args.Bool("watch");
  const bool json = args.Bool("json");
  DPCTL_ASSIGN_OR_FAIL(channel,
                       Channel(args, "coordinator", "DPFLEET_COORDINATOR", Role::kCoordinator));
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  auto jobs = v1::JobService::NewStub(channel);
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::SubmitJobResponse response;
  const grpc::Status status = jobs->SubmitJob(Context().get(), request, &response);
  if (!status.ok()) return FailCall(status);
  if (json) {
    std::cout << Json(response.job()) << "\n";
  } else {
    std::cout << "submitted ";
    PrintJob(response.job());
  }
  return watch ? Watch(*jobs, response.job().job_id(), json) : 0;
}

int JobCommand(Args& args, const std::string& command) {
  const bool json = args.Bool("json");
  DPCTL_ASSIGN_OR_FAIL(channel,
                       Channel(args, "coordinator", "DPFLEET_COORDINATOR", Role::kCoordinator));
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  auto jobs = v1::JobService::NewStub(channel);
  if (command == "jobs") {
    v1::ListJobsResponse response;
    const grpc::Status status = jobs->ListJobs(Context().get(), {}, &response);
    if (!status.ok()) return FailCall(status);
    if (json) {
      std::cout << Json(response) << "\n";
    } else {
      for (const v1::Job& job : response.jobs()) PrintJob(job);
    }
    return 0;
  }
  if (args.positional().size() != 2)
    return Fail(absl::InvalidArgumentError(command + " needs a JOB_ID"));
  const std::string& job_id = args.positional()[1];
  if (command == "watch") return Watch(*jobs, job_id, json);
  v1::Job job;
  grpc::Status status;
  if (command == "get") {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    status = jobs->GetJob(Context().get(), request, &job);
  } else {
    v1::CancelJobRequest request;
    request.set_job_id(job_id);
    status = jobs->CancelJob(Context().get(), request, &job);
  }
  if (!status.ok()) return FailCall(status);
  if (json) {
    std::cout << Json(job) << "\n";
  } else {
    PrintJob(job);
  }
  return 0;
}

int Workers(Args& args) {
  const bool json = args.Bool("json");
  DPCTL_ASSIGN_OR_FAIL(channel,
                       Channel(args, "coordinator", "DPFLEET_COORDINATOR", Role::kCoordinator));
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  auto registry = v1::WorkerRegistry::NewStub(channel);
  v1::ListWorkersResponse response;
  const grpc::Status status = registry->ListWorkers(Context(absl::Seconds(5)).get(), {}, &response);
  if (!status.ok()) return FailCall(status);
  if (json) {
    std::cout << Json(response) << "\n";
    return 0;
  }
  int alive = 0;
  for (const v1::WorkerStatus& worker : response.workers()) {
    alive += worker.alive() ? 1 : 0;
    std::string datasets;
    for (const v1::DatasetInfo& info : worker.datasets()) {
      const bool whole = info.held_begin() == 0 && info.held_end() == info.train_examples();
      absl::StrAppend(
          &datasets, datasets.empty() ? "" : ", ", info.name(), " (",
          whole ? "" : absl::StrCat("rows ", info.held_begin(), "-", info.held_end(), " of "),
          info.train_examples(), ")");
    }
    std::cout << absl::StrFormat("%-10s %-21s %-5s %-16s %s\n", worker.worker_id(),
                                 worker.address(), worker.alive() ? "alive" : "dead",
                                 worker.job_id().empty() ? "idle" : worker.job_id(), datasets);
  }
  std::cout << alive << " alive\n";
  return 0;
}

// The budget's filter in words, or why there is none yet.
std::string FilterInWords(const std::string& serialized) {
  if (serialized.empty()) return "not fixed yet (the first admitted job fits it)";
  const absl::StatusOr<accountant::PrivacyFilter> filter =
      accountant::PrivacyFilter::Parse(serialized);
  return filter.ok() ? filter->Describe() : serialized;
}

int BudgetCommand(Args& args, const std::string& command) {
  if (args.positional().size() != 2)
    return Fail(absl::InvalidArgumentError(command + " needs a dataset name"));
  const std::string& dataset = args.positional()[1];
  const bool json = args.Bool("json");
  DPCTL_ASSIGN_OR_FAIL(
      channel, Channel(args, "accountant-address", "DPFLEET_ACCOUNTANT", Role::kAccountant));
  auto accountant = v1::AccountantService::NewStub(channel);
  if (command == "register-dataset") {
    v1::RegisterDatasetRequest request;
    request.set_dataset(dataset);
    DPCTL_ASSIGN_OR_FAIL(epsilon, args.Double("epsilon"));
    DPCTL_ASSIGN_OR_FAIL(delta, args.Double("delta"));
    auto context = Context();
    if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
    request.set_epsilon_budget(epsilon);
    request.set_delta(delta);
    v1::RegisterDatasetResponse response;
    const grpc::Status status = accountant->RegisterDataset(context.get(), request, &response);
    if (!status.ok()) return FailCall(status);
    if (json) {
      std::cout << Json(request) << "\n";
      return kSuccess;
    }
    std::cout << absl::StrFormat("registered dataset %s with budget epsilon=%g delta=%g\n", dataset,
                                 epsilon, delta);
    return 0;
  }
  auto context = Context();
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  v1::GetBudgetRequest request;
  request.set_dataset(dataset);
  v1::GetBudgetResponse budget;
  const grpc::Status status = accountant->GetBudget(context.get(), request, &budget);
  if (!status.ok()) return FailCall(status);
  if (json) {
    std::cout << Json(budget) << "\n";
  } else {
    std::cout << absl::StrFormat(
        "%s: budget epsilon=%g at delta=%g (privacy filter)\n"
        "  admitted (committed)   %.4f  (%.4f if all jobs had been fixed in advance)\n"
        "  admitted + reserved    %.4f  (%d open reservation(s))\n"
        "  remaining              %.4f  (the filter guarantees epsilon=%g overall)\n"
        "  filter                 %s\n",
        budget.dataset(), budget.epsilon_budget(), budget.delta(), budget.epsilon_committed(),
        budget.epsilon_committed_fixed_composition(), budget.epsilon_reserved(),
        budget.open_reservations(), budget.epsilon_remaining(), budget.epsilon_budget(),
        FilterInWords(budget.filter()));
  }
  return 0;
}

int Privacy(Args& args) {
  if (args.positional().size() != 2) {
    return Fail(absl::InvalidArgumentError("privacy needs 'epsilon' or 'noise'"));
  }
  const std::string what = args.positional()[1];
  const bool json = args.Bool("json");
  DPCTL_ASSIGN_OR_FAIL(requested,
                       accountant::ParseAccountingMethod(*args.String("accountant", "auto")));
  DPCTL_ASSIGN_OR_FAIL(q, args.Double("sampling-rate"));
  DPCTL_ASSIGN_OR_FAIL(steps, args.Int("steps"));
  DPCTL_ASSIGN_OR_FAIL(delta, args.Double("delta"));
  const std::string method =
      accountant::AccountingMethodName(accountant::ResolveMethod(requested, q));
  if (what == "epsilon") {
    DPCTL_ASSIGN_OR_FAIL(sigma, args.Double("noise-multiplier"));
    if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
    const accountant::SubsampledGaussian mechanism{
        .sampling_rate = q, .noise_multiplier = sigma, .steps = steps};
    if (method == "pld") {  // Also show what the discretisation costs.
      DPCTL_ASSIGN_OR_FAIL(pld, accountant::PldEpsilon(mechanism, delta, {.estimate_error = true}));
      if (json) {
        std::cout << absl::StrFormat(
            "{\"epsilon\": %.17g, \"delta\": %.17g, \"accountant\": \"pld\", "
            "\"discretization_error_estimate\": %.3g, \"delta_slack\": %.3g}\n",
            pld.epsilon, delta, pld.discretization_error_estimate, pld.delta_slack);
      } else {
        std::cout << absl::StrFormat(
            "epsilon = %.6f at delta = %g (pld: an upper bound; discretization error about %.1g)\n",
            pld.epsilon, delta, pld.discretization_error_estimate);
      }
      return 0;
    }
    DPCTL_ASSIGN_OR_FAIL(epsilon, accountant::MechanismEpsilon(mechanism, delta, requested));
    if (json) {
      std::cout << absl::StrFormat(
          "{\"epsilon\": %.17g, \"delta\": %.17g, \"accountant\": \"%s\"}\n", epsilon, delta,
          method);
    } else {
      std::cout << absl::StrFormat("epsilon = %.6f at delta = %g (%s)\n", epsilon, delta, method);
    }
    return 0;
  }
  if (what == "noise") {
    DPCTL_ASSIGN_OR_FAIL(target, args.Double("target-epsilon"));
    if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
    DPCTL_ASSIGN_OR_FAIL(noise, accountant::CalibrateNoise(q, steps, target, delta, requested));
    if (json) {
      std::cout << absl::StrFormat(
          "{\"noise_multiplier\": %.17g, \"epsilon\": %.17g, \"delta\": %.17g, \"accountant\": "
          "\"%s\"}\n",
          noise.noise_multiplier, noise.epsilon, delta,
          accountant::AccountingMethodName(noise.method));
    } else {
      std::cout << absl::StrFormat("noise multiplier = %.6f (epsilon %.6f at delta %g, %s)\n",
                                   noise.noise_multiplier, noise.epsilon, delta,
                                   accountant::AccountingMethodName(noise.method));
    }
    return 0;
  }
  return Fail(absl::InvalidArgumentError(absl::StrCat("unknown privacy command '", what, "'")));
}

// Asks each address for its health until all report SERVING or --wait seconds (default 0: ask
// once) have passed; prints one line per server.
int Health(Args& args) {
  DPCTL_ASSIGN_OR_FAIL(wait_s, args.Double("wait", 0));
  const bool json = args.Bool("json");
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  const std::vector<std::string> addresses(args.positional().begin() + 1, args.positional().end());
  if (addresses.empty()) return Fail(absl::InvalidArgumentError("health needs HOST:PORT"));
  const absl::Time deadline = absl::Now() + absl::Seconds(wait_s);
  int unhealthy = 0;
  for (const std::string& address : addresses) {
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    std::string state;
    while (true) {
      auto context = Context(absl::Seconds(2));
      context->set_wait_for_ready(true);  // A server still starting is waited for, not refused.
      grpc::health::v1::HealthCheckResponse response;
      const grpc::Status status =
          health->Check(context.get(), grpc::health::v1::HealthCheckRequest(), &response);
      state = status.ok()
                  ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
                  : absl::StrCat("unreachable (", status.error_message(), ")");
      if (response.status() == grpc::health::v1::HealthCheckResponse::SERVING ||
          absl::Now() >= deadline) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    if (json) {
      std::cout << absl::StrFormat("{\"address\": \"%s\", \"status\": \"%s\"}\n",
                                   absl::CEscape(address), absl::CEscape(state));
    } else {
      std::cout << address << " " << state << "\n";
    }
    if (state != "SERVING") ++unhealthy;
  }
  return unhealthy == 0 ? kSuccess : kJobDidNotSucceed;
}

int GrantCommand(Args& args, const std::string& command) {
  if (args.positional().size() != 3) {
    return Fail(absl::InvalidArgumentError(command + " needs a dataset name and a principal"));
  }
  const std::string& dataset = args.positional()[1];
  const std::string& principal = args.positional()[2];
  const bool json = args.Bool("json");
  DPCTL_ASSIGN_OR_FAIL(
      channel, Channel(args, "accountant-address", "DPFLEET_ACCOUNTANT", Role::kAccountant));
  if (absl::Status unused = args.CheckAllUsed(); !unused.ok()) return Fail(unused);
  auto accountant = v1::AccountantService::NewStub(channel);
  auto context = Context();
  grpc::Status status;
  if (command == "grant") {
    v1::GrantAccessRequest request;
    request.set_dataset(dataset);
    request.set_principal(principal);
    v1::GrantAccessResponse response;
    status = accountant->GrantAccess(context.get(), request, &response);
  } else {
    v1::RevokeAccessRequest request;
    request.set_dataset(dataset);
    request.set_principal(principal);
    v1::RevokeAccessResponse response;
    status = accountant->RevokeAccess(context.get(), request, &response);
  }
  if (!status.ok()) return FailCall(status);
  if (json) {
    std::cout << absl::StrFormat("{\"%s\": {\"dataset\": \"%s\", \"principal\": \"%s\"}}\n",
                                 command == "grant" ? "granted" : "revoked", absl::CEscape(dataset),
                                 absl::CEscape(principal));
    return kSuccess;
  }
  std::cout << (command == "grant" ? "granted " : "revoked ") << principal << " access to "
            << dataset << "\n";
  return kSuccess;
}

int Main(int argc, char** argv) {
  absl::StatusOr<Args> parsed = Args::Parse(argc, argv, 1);
  if (!parsed.ok()) return Fail(parsed.status());
  Args& args = *parsed;
  if (args.positional().empty() || args.positional()[0] == "help" || args.Bool("help")) {
    std::cout << kHelp;
    return args.positional().empty() && !args.Bool("help") ? kUsage : kSuccess;
  }
  const std::string command = args.positional()[0];
  if (command == "submit") return Submit(args);
  if (command == "watch" || command == "get" || command == "jobs" || command == "cancel") {
    return JobCommand(args, command);
  }
  if (command == "history" || command == "report" || command == "plot") {
    return HistoryCommand(args, command);
  }
  if (command == "workers") return Workers(args);
  if (command == "budget" || command == "register-dataset") return BudgetCommand(args, command);
  if (command == "grant" || command == "revoke") return GrantCommand(args, command);
  if (command == "privacy") return Privacy(args);
  if (command == "health") return Health(args);
  std::cerr << "dpctl: unknown command '" << command << "'\n\n" << kHelp;
  return kUsage;
}

}  // namespace
}  // namespace dpfleet::dpctl

int main(int argc, char** argv) { return dpfleet::dpctl::Main(argc, argv); }
