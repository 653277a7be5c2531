#ifndef DPFLEET_TESTS_CLUSTER_FIXTURE_H_
#define DPFLEET_TESTS_CLUSTER_FIXTURE_H_

// Test fixtures for whole clusters: clients for a cluster's coordinator and accountant
// (ClusterTest), and the real binaries on loopback started by deploy/local_cluster.sh
// (LocalClusterTest).

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/test_certificates.h"
#include "common/tls.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet {

constexpr double kDelta = 1e-5;
// The coordinator's default --lease_steps: a job that stops early is charged fewer than this many
// steps more than it ran, per attempt (coordinator/step_leaser.h).
constexpr int64_t kLeaseSteps = 8;

inline std::string Runfiles() { return absl::StrCat(std::getenv("TEST_SRCDIR"), "/dpfleet"); }

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Runs `command`, returns its exit code and puts its stdout into *output.
inline int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, got);
  return WEXITSTATUS(pclose(pipe));
}

// A full-batch finetuning job of a linear head on 2 workers, 10 steps at epsilon 4, in the recipe
// of Mehta et al. (2022): zero-initialised head, DP-LAMB, per-class sigmoid loss.
inline v1::JobSpec LinearHeadJob(const std::string& dataset, double delta) {
  v1::JobSpec spec;
  spec.set_dataset(dataset);
  spec.set_model("linear");
  spec.mutable_optimizer()->set_type(v1::DP_LAMB);
  spec.mutable_optimizer()->set_learning_rate(0.05);
  spec.set_loss(v1::LOSS_SIGMOID_CROSS_ENTROPY);
  spec.set_zero_init_head(true);
  spec.set_full_batch(true);
  spec.set_steps(10);
  spec.set_clip_norm(1.0);
  spec.set_target_epsilon(4.0);
  spec.set_delta(delta);
  spec.set_num_workers(2);
  return spec;
}

// A context for one call, with a deadline.
inline std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

// Clients for a running cluster's coordinator and accountant, and the calls tests make on them.
class ClusterTest : public ::testing::Test {
 protected:
  // Points the clients at a running cluster, calling as the principal whose certificate `tls`
  // holds (an admin, for most tests).
  void Connect(const std::string& coordinator_address, const std::string& accountant_address,
               const TlsMaterial& tls) {
    coordinator_address_ = coordinator_address;
    accountant_address_ = accountant_address;
    auto coordinator = MutualTlsChannel(coordinator_address, tls, Role::kCoordinator);
    jobs_ = v1::JobService::NewStub(coordinator);
    registry_ = v1::WorkerRegistry::NewStub(coordinator);
    accountant_ = v1::AccountantService::NewStub(
        MutualTlsChannel(accountant_address, tls, Role::kAccountant));
  }

  void RegisterDataset(double epsilon_budget, const std::string& dataset = "fashion-mnist",
                       double delta = kDelta) {
    v1::RegisterDatasetRequest request;
    request.set_dataset(dataset);
    request.set_epsilon_budget(epsilon_budget);
    request.set_delta(delta);
    v1::RegisterDatasetResponse response;
    ASSERT_TRUE(accountant_->RegisterDataset(Context().get(), request, &response).ok());
  }

  // Lets `principal` submit jobs on `dataset` (the admin that registered it may already).
  void Grant(const std::string& principal, const std::string& dataset = "fashion-mnist") {
    v1::GrantAccessRequest request;
    request.set_dataset(dataset);
    request.set_principal(principal);
    v1::GrantAccessResponse response;
    ASSERT_TRUE(accountant_->GrantAccess(Context().get(), request, &response).ok());
  }

  grpc::Status Submit(const v1::JobSpec& spec, v1::Job* job) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    const grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    *job = response.job();
    return status;
  }

  grpc::Status Cancel(const std::string& job_id) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    return jobs_->CancelJob(&context, request, &job);
  }

  v1::Job Get(const std::string& job_id) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    grpc::Status status;
    // UNAVAILABLE means retry: a call can meet the connection of a coordinator that was restarted.
    for (int attempt = 0; attempt < 3; ++attempt) {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      status = jobs_->GetJob(&context, request, &job);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    }
    EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
    return job;
  }

  // The job's whole history, every page joined, as `jobs` (default: the admin's stub) sees it.
  v1::JobHistory History(const std::string& job_id, v1::JobService::Stub* jobs = nullptr) {
    v1::GetJobHistoryRequest request;
    request.set_job_id(job_id);
    v1::JobHistory history;
    do {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      v1::JobHistory page;
      const grpc::Status status =
          (jobs != nullptr ? jobs : jobs_.get())->GetJobHistory(&context, request, &page);
      EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
      if (!status.ok()) break;
      if (request.start_index() == 0) {
        history = page;
      } else {
        history.mutable_steps()->MergeFrom(page.steps());
      }
      request.set_start_index(page.next_start_index());
    } while (request.start_index() != 0);
    return history;
  }

  // Polls until `done(job)` or the deadline; returns the last snapshot.
  template <typename Done>
  v1::Job WaitFor(const std::string& job_id, Done done, absl::Duration timeout = absl::Minutes(3)) {
    const absl::Time deadline = absl::Now() + timeout;
    v1::Job job = Get(job_id);
    while (!done(job) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
      job = Get(job_id);
    }
    return job;
  }

  // How many registered workers the coordinator counts as alive.
  int AliveWorkers() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListWorkersResponse response;
    if (!registry_->ListWorkers(&context, v1::ListWorkersRequest(), &response).ok()) return 0;
    int alive = 0;
    for (const v1::WorkerStatus& worker : response.workers()) alive += worker.alive() ? 1 : 0;
    return alive;
  }

  v1::GetBudgetResponse Budget(const std::string& dataset = "fashion-mnist") {
    v1::GetBudgetRequest request;
    request.set_dataset(dataset);
    v1::GetBudgetResponse budget;
    EXPECT_TRUE(accountant_->GetBudget(Context().get(), request, &budget).ok());
    return budget;
  }

  static bool Ended(const v1::Job& job) {
    return job.state() == v1::SUCCEEDED || job.state() == v1::FAILED ||
           job.state() == v1::CANCELLED;
  }

  std::string coordinator_address_;
  std::string accountant_address_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerRegistry::Stub> registry_;
  std::unique_ptr<v1::AccountantService::Stub> accountant_;
};

// The real binaries on loopback, started by deploy/local_cluster.sh (accountant, coordinator, 2
// workers).
class LocalClusterTest : public ClusterTest {
 protected:
  // Where the workers find their datasets; "%w" stands for the worker's index.
  virtual std::string DataDir() { return "/usr/share/datasets"; }

  void SetUp() override {
    state_dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string output;
    const std::string start =
        absl::StrCat("bash ", Runfiles(), "/deploy/local_cluster.sh start",
                     " --workers 2 --collective-timeout-s 10 --resume-wait-s 2 --state-dir ",
                     state_dir_, " --bin-dir ", Runfiles(), " --data-dir ", DataDir());
    ASSERT_EQ(RunCommand(start, &output), 0) << output << ReadFile(state_dir_ + "/coordinator.log");
    Connect(AddressIn(state_dir_ + "/coordinator.port"), AddressIn(state_dir_ + "/accountant.port"),
            Certificate("admin"));
  }

  void TearDown() override {
    std::string output;
    RunCommand(
        absl::StrCat("bash ", Runfiles(), "/deploy/local_cluster.sh stop --state-dir ", state_dir_),
        &output);
  }

  // Restarts the coordinator on the same port and state with deploy/local_cluster.sh
  // restart-coordinator, which stops it gracefully (SIGTERM) if it still runs.
  void RestartCoordinator() {
    std::string output;
    ASSERT_EQ(
        RunCommand(absl::StrCat("bash ", Runfiles(), "/deploy/local_cluster.sh restart-coordinator",
                                " --collective-timeout-s 10 --resume-wait-s 2 --state-dir ",
                                state_dir_, " --bin-dir ", Runfiles()),
                   &output),
        0)
        << output << ReadFile(state_dir_ + "/coordinator.previous.log")
        << ReadFile(state_dir_ + "/coordinator.log") << ReadFile(state_dir_ + "/worker-0.log")
        << ReadFile(state_dir_ + "/worker-1.log");
  }

  // SIGKILLs the coordinator and starts it again on the same port and state.
  void KillAndRestartCoordinator() {
    ASSERT_EQ(kill(std::stoi(ReadFile(state_dir_ + "/coordinator.pid")), SIGKILL), 0);
    RestartCoordinator();
  }

  // Starts worker `index` again after it died: a replacement holding the same part of the data.
  void RestartWorker(int index) {
    std::string output;
    ASSERT_EQ(RunCommand(absl::StrCat("bash ", Runfiles(),
                                      "/deploy/local_cluster.sh restart-worker --worker ", index,
                                      " --state-dir ", state_dir_, " --bin-dir ", Runfiles()),
                         &output),
              0)
        << output << ReadFile(absl::StrCat(state_dir_, "/worker-", index, ".log"));
  }

  // The certificate the launcher made for principal `name` (see deploy/local_cluster.sh).
  TlsMaterial Certificate(const std::string& name) const {
    return CertificateIn(state_dir_ + "/tls", name);
  }

  // The loopback address whose port the launcher wrote to `port_file` (one line).
  static std::string AddressIn(const std::string& port_file) {
    std::string port = ReadFile(port_file);
    while (!port.empty() && (port.back() == '\n' || port.back() == ' ')) port.pop_back();
    return "127.0.0.1:" + port;
  }

  std::string state_dir_;
};

}  // namespace dpfleet

#endif  // DPFLEET_TESTS_CLUSTER_FIXTURE_H_
