// End-to-end tests: the real binaries on loopback, started by deploy/local_cluster.sh (accountant,
// coordinator, 2 workers), training on the real Fashion-MNIST from Debian's dataset-fashion-mnist.

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "accountant/gaussian.h"
#include "accountant/mechanism.h"
#include "features/feature_shard.h"
#include "gtest/gtest.h"
#include "tests/cluster_fixture.h"
#include "tests/fashion_mnist_jobs.h"

namespace dpfleet {
namespace {

TEST_F(LocalClusterTest, JobSucceedsOnBitIdenticalWorkersAndIsChargedExactlyOnce) {
  constexpr int64_t kSteps = 60;
  // Room for one job, not two (RDP composition makes two cost far less than twice one). The
  // filter the budget gets is fitted to the budget: b is a fixed point, found in a few rounds.
  double room = 10;
  for (int round = 0; round < 20; ++round) {
    const std::string filter = SmallJobFilter(kSteps, room);
    room = (ChargeOf(kSteps, filter) + ChargeOf(2 * kSteps, filter)) / 2;
  }
  RegisterDataset(room);

  v1::Job job;
  v1::JobSpec spec = SmallJob(kSteps);
  spec.set_evaluate_every_steps(25);
  ASSERT_TRUE(Submit(spec, &job).ok());
  EXPECT_EQ(job.total_steps(), kSteps);
  EXPECT_DOUBLE_EQ(job.sampling_rate(), 0.01);
  job = WaitFor(job.job_id(), Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.result().steps_run(), kSteps);
  // The run's history: every step, the evaluations asked for and the final one.
  const v1::JobHistory history = History(job.job_id());
  ASSERT_EQ(history.steps_size(), kSteps);
  for (int64_t i = 0; i < kSteps; ++i) {
    const v1::StepRecord& record = history.steps(i);
    EXPECT_EQ(record.step(), i + 1);
    EXPECT_NEAR(record.epsilon_spent(), EpsilonOf(i + 1), kEpsilonTolerance);
    EXPECT_GT(record.loss(), 0.0);  // The owner (here the admin that submitted) sees it.
    EXPECT_GT(record.step_seconds(), 0.0);
    EXPECT_NEAR(record.examples_per_second() * record.step_seconds(), 600, 1e-6);
  }
  ASSERT_EQ(history.evaluations_size(), 3);
  EXPECT_EQ(history.evaluations(0).step(), 25);
  EXPECT_EQ(history.evaluations(1).step(), 50);
  EXPECT_EQ(history.evaluations(2).step(), kSteps);
  EXPECT_EQ(history.evaluations(2).test_accuracy(), job.result().test_accuracy());
  EXPECT_EQ(history.evaluations(2).test_examples(), 10000);
  EXPECT_NEAR(history.evaluations(0).epsilon_spent(), EpsilonOf(25), kEpsilonTolerance);
  ASSERT_EQ(job.result().parameter_fingerprints_size(), 2);
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1))
      << "workers ended with different parameters";
  EXPECT_GT(job.result().test_accuracy(), 0.6);
  EXPECT_NEAR(job.result().epsilon_spent(), EpsilonOf(kSteps), kEpsilonTolerance);

  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.filter(), SmallJobFilter(kSteps, room));
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(kSteps, budget.filter()), kEpsilonTolerance);
  EXPECT_NEAR(budget.epsilon_reserved(), ChargeOf(kSteps, budget.filter()), kEpsilonTolerance);
  EXPECT_EQ(budget.open_reservations(), 0);

  // The same job again would exceed the budget: refused, and nothing is reserved.
  v1::Job refused;
  const grpc::Status second = Submit(SmallJob(kSteps), &refused);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(second.error_message().find("fashion-mnist"), std::string::npos)
      << second.error_message();
  EXPECT_EQ(Budget().epsilon_reserved(), budget.epsilon_reserved());
  EXPECT_EQ(Budget().open_reservations(), 0);
}

// The report of a real run, drawn by a real browser: headless Chromium loads the page, and the
// DOM it built holds the charts with every point of the run.
TEST_F(LocalClusterTest, ReportOfARealRunRendersItsChartsInChromium) {
  std::string found;
  if (RunCommand("command -v chromium", &found) != 0) {
    GTEST_SKIP() << "no chromium (Debian's chromium package) to render the report in";
  }
  RegisterDataset(100.0);
  std::vector<std::string> ids;
  for (int64_t steps : {20, 40}) {
    v1::JobSpec spec = SmallJob(steps);
    spec.set_evaluate_every_steps(10);
    spec.set_display_name(absl::StrCat("mlp ", steps, " steps"));
    v1::Job job;
    ASSERT_TRUE(Submit(spec, &job).ok());
    ASSERT_EQ(WaitFor(job.job_id(), Ended).state(), v1::SUCCEEDED);
    ids.push_back(job.job_id());
  }
  const std::string dir = std::getenv("TEST_TMPDIR");
  // dpctl as the README runs it: the cluster's environment, the admin's certificate.
  const std::string dpctl =
      absl::StrCat("eval \"$(bash ", Runfiles(), "/deploy/local_cluster.sh env --state-dir ",
                   state_dir_, ")\" && ", Runfiles(), "/dpctl/dpctl");
  std::string output;
  ASSERT_EQ(RunCommand(absl::StrCat("bash -c '", dpctl, " report ", ids[0], " ", ids[1], " --out ",
                                    dir, "/report.html' 2>&1"),
                       &output),
            0)
      << output;
  ASSERT_EQ(RunCommand(absl::StrCat("bash -c '", dpctl, " plot ", ids[1],
                                    " --metric accuracy --out ", dir, "/accuracy.png' 2>&1"),
                       &output),
            0)
      << output;
  EXPECT_EQ(ReadFile(dir + "/accuracy.png").substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_EQ(RunCommand(absl::StrCat("bash -c '", dpctl, " plot ", ids[1], " --metric speed --out ",
                                    dir, "/x.svg' 2>&1"),
                       &output),
            2)  // Usage.
      << output;
  EXPECT_EQ(RunCommand(absl::StrCat("bash -c '", dpctl, " history job-404' 2>&1"), &output), 3)
      << output;  // Refused: NOT_FOUND.

  const std::string chromium = absl::StrCat("HOME=", dir, " chromium --headless --no-sandbox ",
                                            "--disable-gpu --user-data-dir=", dir, "/chromium ");
  std::string dom;
  ASSERT_EQ(
      RunCommand(absl::StrCat(chromium, "--dump-dom file://", dir, "/report.html 2>/dev/null"),
                 &dom),
      0);
  for (const std::string& expected :
       {absl::StrCat("data-series=\"mlp 20 steps (", ids[0], ")\" data-points=\"20\""),
        absl::StrCat("data-series=\"mlp 40 steps (", ids[1], ")\" data-points=\"40\""),
        std::string("class=\"markers\" data-series=\"mlp 40 steps"),  // Its 4 evaluations.
        std::string("Accuracy against privacy spent"), std::string("class=\"committed\""),
        std::string("Budget of fashion-mnist")}) {
    EXPECT_NE(dom.find(expected), std::string::npos) << expected << "\n" << dom.substr(0, 4000);
  }
  EXPECT_NE(
      dom.find("class=\"markers\" data-series=\"mlp 40 steps (" + ids[1] + ")\" data-points=\"4\""),
      std::string::npos);
  ASSERT_EQ(RunCommand(absl::StrCat(chromium, "--screenshot=", dir, "/report.png ",
                                    "--window-size=1400,1400 file://", dir,
                                    "/report.html >/dev/null 2>&1"),
                       &output),
            0);
  EXPECT_GT(ReadFile(dir + "/report.png").size(), 20000u);  // Charts, not a blank page.
}

TEST_F(LocalClusterTest, EveryServerAnswersGrpcHealthChecks) {
  // What Kubernetes' gRPC probes and the Slurm launcher ask (grpc.health.v1).
  // On each server's plaintext health port: the only thing served without a certificate.
  std::string servers;
  for (const char* server : {"coordinator", "accountant", "worker-0", "worker-1"}) {
    absl::StrAppend(&servers, " ",
                    AddressIn(absl::StrCat(state_dir_, "/", server, ".health_port")));
  }
  std::string output;
  EXPECT_EQ(RunCommand(absl::StrCat(Runfiles(), "/dpctl/dpctl health ", servers), &output), 0)
      << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 4) << output;
  EXPECT_EQ(output.find("unreachable"), std::string::npos) << output;
  // A server that is not there is reported, and fails the check.
  output.clear();
  EXPECT_EQ(RunCommand(absl::StrCat(Runfiles(), "/dpctl/dpctl health 127.0.0.1:1"), &output), 1);
  EXPECT_NE(output.find("127.0.0.1:1 unreachable"), std::string::npos) << output;
}

TEST_F(LocalClusterTest, BadJobsAreRefusedNamingTheProblemAndReserveNothing) {
  RegisterDataset(10.0);
  struct Case {
    std::function<void(v1::JobSpec&)> mutate;
    grpc::StatusCode code;
    std::string names;
  };
  const Case cases[] = {
      {[](v1::JobSpec& s) { s.set_clip_norm(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "clip_norm"},
      {[](v1::JobSpec& s) { s.set_clip_norm(NAN); }, grpc::StatusCode::INVALID_ARGUMENT,
       "clip_norm"},
      {[](v1::JobSpec& s) { s.set_sampling_rate(1.5); }, grpc::StatusCode::INVALID_ARGUMENT,
       "sampling_rate"},
      {[](v1::JobSpec& s) { s.set_delta(1.0); }, grpc::StatusCode::INVALID_ARGUMENT, "delta"},
      {[](v1::JobSpec& s) { s.set_steps(0); }, grpc::StatusCode::INVALID_ARGUMENT, "steps"},
      {[](v1::JobSpec& s) { s.set_model("gpt5"); }, grpc::StatusCode::INVALID_ARGUMENT, "model"},
      {[](v1::JobSpec& s) { s.set_dataset("imagenet"); }, grpc::StatusCode::NOT_FOUND, "imagenet"},
      {[](v1::JobSpec& s) { s.set_num_workers(3); }, grpc::StatusCode::FAILED_PRECONDITION,
       "num_workers"},
      {[](v1::JobSpec& s) { s.set_target_epsilon(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "target_epsilon"},
      // Larger than any request the coordinator takes: refused before it is parsed.
      {[](v1::JobSpec& s) { s.set_dataset(std::string(2 << 20, 'd')); },
       grpc::StatusCode::RESOURCE_EXHAUSTED, "larger than max"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = SmallJob(10);
    c.mutate(spec);
    v1::Job job;
    const grpc::Status status = Submit(spec, &job);
    EXPECT_EQ(status.error_code(), c.code) << c.names << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.names), std::string::npos) << status.error_message();
  }
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.epsilon_reserved(), 0.0);
  EXPECT_EQ(budget.open_reservations(), 0);
}

TEST_F(LocalClusterTest, ANoisedLossIsShownToReadersAndChargedWithTheGradient) {
  constexpr int64_t kSteps = 30;
  RegisterDataset(100.0);
  v1::JobSpec spec = SmallJob(kSteps);
  spec.set_loss_noise_multiplier(2.0);
  spec.set_loss_clip(3.0);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  const double combined = accountant::CombinedNoiseMultiplier(1.0, 2.0);
  EXPECT_EQ(job.noise_multiplier(), 1.0);
  EXPECT_EQ(job.accounted_noise_multiplier(), combined);
  job = WaitFor(job.job_id(), Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  // The raw diagnostics are not released at all, the noised loss is (noise std 6/600 = 0.01).
  EXPECT_EQ(job.progress().batch_size(), 0);
  EXPECT_EQ(job.progress().loss(), 0.0);
  EXPECT_GT(job.progress().noised_loss(), 0.05);
  EXPECT_LT(job.progress().noised_loss(), 3.0);
  auto reader = v1::JobService::NewStub(
      MutualTlsChannel(coordinator_address_, Certificate("reader"), Role::kCoordinator));
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job seen;
  ASSERT_TRUE(reader->GetJob(Context().get(), get, &seen).ok());
  EXPECT_EQ(seen.progress().noised_loss(), job.progress().noised_loss());
  const v1::JobHistory seen_history = History(job.job_id(), reader.get());
  ASSERT_EQ(seen_history.steps_size(), kSteps);
  EXPECT_EQ(seen_history.steps(kSteps - 1).noised_loss(), job.progress().noised_loss());
  // Charged as one Gaussian mechanism of both releases.
  const std::string filter = Budget().filter();
  EXPECT_NEAR(
      Budget().epsilon_committed(),
      ChargeOf(
          {.sampling_rate = kSmallJobSamplingRate, .noise_multiplier = combined, .steps = kSteps},
          filter),
      kEpsilonTolerance);
  EXPECT_GT(Budget().epsilon_committed(), ChargeOf(kSteps, filter));
  // A reader of a job with a raw loss gets the history without it.
  v1::Job raw;
  ASSERT_TRUE(Submit(SmallJob(5), &raw).ok());
  ASSERT_EQ(WaitFor(raw.job_id(), Ended).state(), v1::SUCCEEDED);
  EXPECT_GT(History(raw.job_id()).steps(4).loss(), 0.0);
  EXPECT_EQ(History(raw.job_id(), reader.get()).steps(4).loss(), 0.0);
  EXPECT_EQ(History(raw.job_id(), reader.get()).steps(4).batch_size(), 0);

  // With a target epsilon, the gradient gets less noise's worth of it: the whole meets the target.
  v1::JobSpec targeted = SmallJob(kSteps);
  targeted.set_target_epsilon(1.0);
  targeted.set_loss_noise_multiplier(5.0);
  targeted.set_loss_clip(3.0);
  ASSERT_TRUE(Submit(targeted, &job).ok());
  EXPECT_GT(job.noise_multiplier(), job.accounted_noise_multiplier());
  EXPECT_LE(job.planned_epsilon(), 1.0 + 1e-9);
  EXPECT_EQ(WaitFor(job.job_id(), Ended).state(), v1::SUCCEEDED);
  // A loss noise that would by itself spend the target is refused.
  targeted.set_loss_noise_multiplier(0.1);
  const grpc::Status refused = Submit(targeted, &job);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("loss_noise_multiplier"), std::string::npos);
}

TEST_F(LocalClusterTest, WorkerKilledMidJobResumesFromItsCheckpointAndChargesEveryStepThatRan) {
  constexpr int64_t kSteps = 400;  // Checkpoints every 25 steps; long enough to be killed mid-way.
  RegisterDataset(100.0);
  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(kSteps), &job).ok());
  job =
      WaitFor(job.job_id(), [](const v1::Job& j) { return j.progress().step() >= 60 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();
  const int pid = std::stoi(ReadFile(state_dir_ + "/worker-1.pid"));
  ASSERT_EQ(kill(pid, SIGKILL), 0);

  job = WaitFor(job.job_id(), Ended, absl::Seconds(90));
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  // It finished on the one worker left, and ran again the steps lost since its last checkpoint.
  EXPECT_EQ(job.result().parameter_fingerprints_size(), 1);
  EXPECT_GE(job.result().steps_run(), kSteps);
  EXPECT_LT(job.result().steps_run(), kSteps + 25);
  EXPECT_GT(job.result().test_accuracy(), 0.6);
  // Every step that ran is charged, lost ones included, and the job's epsilon says so.
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(job.result().steps_charged(), budget.filter()),
              kEpsilonTolerance);
  EXPECT_NEAR(job.result().epsilon_spent(), EpsilonOf(job.result().steps_charged()),
              kEpsilonTolerance);
  // Leased ahead: the failed attempt may have been charged a few steps it did not run.
  EXPECT_GE(job.result().steps_charged(), job.result().steps_run());
  EXPECT_LT(job.result().steps_charged(), job.result().steps_run() + kLeaseSteps);
}

TEST_F(LocalClusterTest, CancelledJobStopsAndIsChargedOnlyForTheStepsThatRan) {
  RegisterDataset(100.0);
  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(100000), &job).ok());
  job =
      WaitFor(job.job_id(), [](const v1::Job& j) { return j.progress().step() >= 3 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();
  {
    // Each WatchJob stream holds a coordinator thread while the job runs: a caller may hold 8.
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<v1::JobEvent>>> streams;
    v1::WatchJobRequest watch;
    watch.set_job_id(job.job_id());
    for (int i = 0; i <= 8; ++i) {
      contexts.push_back(Context());
      streams.push_back(jobs_->WatchJob(contexts.back().get(), watch));
      v1::JobEvent event;
      if (i < 8) ASSERT_TRUE(streams.back()->Read(&event)) << "stream " << i;
    }
    v1::JobEvent event;
    EXPECT_FALSE(streams.back()->Read(&event));
    const grpc::Status ninth = streams.back()->Finish();
    EXPECT_EQ(ninth.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << ninth.error_message();
    EXPECT_NE(ninth.error_message().find("8 WatchJob streams"), std::string::npos);
    for (auto& context : contexts) context->TryCancel();
    for (int i = 0; i < 8; ++i) streams[i]->Finish();
  }
  ASSERT_TRUE(Cancel(job.job_id()).ok());
  job = WaitFor(job.job_id(), Ended, absl::Seconds(30));
  ASSERT_EQ(job.state(), v1::CANCELLED) << job.error();
  EXPECT_GE(job.result().steps_run(), 3);
  EXPECT_LT(job.result().steps_run(), 100000);
  // What ran, and what the workers had been leased beyond it.
  EXPECT_GE(job.result().steps_charged(), job.result().steps_run());
  EXPECT_LT(job.result().steps_charged(), job.result().steps_run() + kLeaseSteps);
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(job.result().steps_charged(), budget.filter()),
              kEpsilonTolerance);
  // Cancelling an ended job is refused.
  EXPECT_EQ(Cancel(job.job_id()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(LocalClusterTest, CoordinatorKilledMidJobResumesFromItsCheckpointAndChargesEveryStep) {
  constexpr int64_t kSteps = 300;
  RegisterDataset(100.0);
  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(kSteps), &job).ok());
  const std::string job_id = job.job_id();
  // Past the first checkpoint (every 25 steps).
  job = WaitFor(job_id, [](const v1::Job& j) { return j.progress().step() >= 30 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();
  const int64_t steps_seen = job.progress().step();
  KillAndRestartCoordinator();
  if (HasFatalFailure()) return;
  // Same port: the old stub reaches the new coordinator, which still knows the job and resumes it
  // from a checkpoint it saved, not from the start.
  job = WaitFor(job_id, [](const v1::Job& j) {
    return j.error().find("after the coordinator restarted") != std::string::npos || Ended(j);
  });
  ASSERT_NE(job.error().find("resuming from step"), std::string::npos) << job.error();
  const int64_t resumed_from =
      std::stoll(job.error().substr(job.error().find("resuming from step ") + 19));
  EXPECT_GE(resumed_from, 25);
  EXPECT_LE(resumed_from, steps_seen + 25);
  job = WaitFor(job_id, Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1));
  // Steps between the checkpoint and the crash ran twice, and both runs are charged: every step
  // up to the durable bound saved before the crash, then the rest of the job again.
  EXPECT_GE(job.result().steps_run(), kSteps + steps_seen - resumed_from);
  EXPECT_GE(job.result().steps_charged(), job.result().steps_run());
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(job.result().steps_charged(), budget.filter()),
              kEpsilonTolerance);
  // The history survived the crash: every step once, in order, the re-run replacing the records
  // of the steps that ran before it.
  const v1::JobHistory history = History(job_id);
  ASSERT_EQ(history.steps_size(), kSteps);
  for (int64_t i = 0; i < kSteps; ++i) EXPECT_EQ(history.steps(i).step(), i + 1);
  EXPECT_NEAR(history.steps(kSteps - 1).epsilon_spent(), job.result().epsilon_spent(),
              kEpsilonTolerance);

  // The restarted coordinator runs new jobs on the workers, which registered again.
  v1::Job next;
  ASSERT_TRUE(Submit(SmallJob(5), &next).ok());
  next = WaitFor(next.job_id(), Ended);
  EXPECT_EQ(next.state(), v1::SUCCEEDED) << next.error();
}

TEST_F(LocalClusterTest, GracefulCoordinatorRestartSuspendsJobsAndResumesThemWithNoStepRunTwice) {
  constexpr int64_t kSteps = 300;
  constexpr int64_t kQueuedSteps = 5;
  RegisterDataset(100.0);
  v1::Job running;
  ASSERT_TRUE(Submit(SmallJob(kSteps), &running).ok());
  const std::string running_id = running.job_id();
  running =
      WaitFor(running_id, [](const v1::Job& j) { return j.progress().step() >= 30 || Ended(j); });
  ASSERT_EQ(running.state(), v1::RUNNING) << running.error();
  const int64_t steps_seen = running.progress().step();
  v1::Job queued;
  ASSERT_TRUE(Submit(SmallJob(kQueuedSteps), &queued).ok());  // Both workers are busy: it waits.
  EXPECT_EQ(Get(queued.job_id()).state(), v1::QUEUED);

  RestartCoordinator();  // SIGTERM, then a new coordinator on the same job store.
  if (HasFatalFailure()) return;
  running = WaitFor(running_id, [](const v1::Job& j) {
    return j.error().find("after the coordinator restarted") != std::string::npos || Ended(j);
  });
  ASSERT_NE(running.error().find("resuming from step "), std::string::npos) << running.error();
  // It stopped at a step boundary and saved that very step, not only its last periodic
  // checkpoint, with the exact count of the steps it had started.
  const int64_t resumed_from =
      std::stoll(running.error().substr(running.error().find("resuming from step ") + 19));
  EXPECT_GE(resumed_from, steps_seen);
  EXPECT_NE(running.error().find(absl::StrCat("; ", resumed_from, " steps counted as started")),
            std::string::npos)
      << running.error();

  running = WaitFor(running_id, Ended);
  ASSERT_EQ(running.state(), v1::SUCCEEDED) << running.error();
  EXPECT_EQ(running.result().steps_run(), kSteps) << "a step ran twice";
  // It suspended at the end of its lease: no step was leased and left unrun.
  EXPECT_EQ(running.result().steps_charged(), kSteps);
  // It did not fail: it waited for both its workers rather than going on with fewer.
  ASSERT_EQ(running.result().parameter_fingerprints_size(), 2);
  EXPECT_EQ(running.result().parameter_fingerprints(0), running.result().parameter_fingerprints(1));
  EXPECT_GT(running.result().test_accuracy(), 0.6);
  // The queued job stayed queued across the restart, and ran after it.
  queued = WaitFor(queued.job_id(), Ended);
  ASSERT_EQ(queued.state(), v1::SUCCEEDED) << queued.error();
  EXPECT_EQ(queued.result().steps_run(), kQueuedSteps);
  // Charged exactly the steps that ran: the two jobs compose like one of their summed steps.
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(kSteps + kQueuedSteps, budget.filter()),
              kEpsilonTolerance);
}

TEST_F(LocalClusterTest, CancelJustBeforeACoordinatorCrashIsHonouredAfterTheRestart) {
  RegisterDataset(100.0);
  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(300), &job).ok());
  const std::string job_id = job.job_id();
  job = WaitFor(job_id, [](const v1::Job& j) { return j.progress().step() >= 5 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();
  ASSERT_TRUE(Cancel(job_id).ok());
  // At once: the runner has most likely not seen the request yet, so only its durable record can
  // stop the job after the restart.
  KillAndRestartCoordinator();
  if (HasFatalFailure()) return;
  job = WaitFor(job_id, Ended);
  EXPECT_EQ(job.state(), v1::CANCELLED) << job.error();
  EXPECT_LT(job.result().steps_run(), 300);
  EXPECT_GE(job.result().steps_charged(), job.result().steps_run());
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(job.result().steps_charged(), budget.filter()),
              kEpsilonTolerance);
}

// Full-batch finetuning of a linear head on frozen features (the headline use, at toy scale): the
// workers read checksummed feature shards, and the accountant calibrates the noise exactly.
class FeatureClusterTest : public LocalClusterTest {
 protected:
  std::string DataDir() override {
    const std::string data = absl::StrCat(std::getenv("TEST_TMPDIR"), "/feature-data");
    const std::string folder = data + "/toy-features";
    std::filesystem::create_directories(folder);
    at::manual_seed(5);  // Public synthetic data.
    const at::Tensor teacher = at::randn({10, 64});
    for (const auto& [name, rows] :
         {std::pair<std::string, int64_t>{"train", 4000}, {"test", 1000}}) {
      const at::Tensor x = at::randn({rows, 64});
      const at::Tensor y = x.mm(teacher.t()).argmax(1);
      EXPECT_TRUE(
          features::WriteFeatureShard(folder + "/" + name + ".dpf", x, y, 10, at::kHalf).ok());
    }
    return data;
  }
};

TEST_F(FeatureClusterTest, FullBatchLinearHeadWithExactAccounting) {
  constexpr double kFeatureDelta = 1e-6;
  RegisterDataset(10.0, "toy-features", kFeatureDelta);
  const v1::JobSpec spec = LinearHeadJob("toy-features", kFeatureDelta);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  // Full batch: sigma from the exact Gaussian accounting, spent to the last digit.
  const accountant::CalibratedNoise exact =
      *accountant::CalibrateFullBatchNoise(10, 4.0, kFeatureDelta);
  EXPECT_NEAR(job.noise_multiplier(), exact.noise_multiplier, 1e-9);
  EXPECT_DOUBLE_EQ(job.sampling_rate(), 1.0);
  job = WaitFor(job.job_id(), Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error();
  EXPECT_NEAR(job.result().epsilon_spent(), exact.epsilon, 1e-9);
  EXPECT_LE(job.result().epsilon_spent(), 4.0);
  EXPECT_GT(job.result().test_accuracy(), 0.35) << "chance is 0.1";
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1));
}

}  // namespace
}  // namespace dpfleet
