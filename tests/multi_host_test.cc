// A cluster of several machines, tested as one: every "host" is a Linux network namespace with its
// own address (tests/netns_hosts.sh), joined to the others by a bridge in a namespace of its own.
// The accountant and the coordinator run on one host, each worker on a host of its own, and this
// test process is the operator's machine on yet another. Nothing runs on loopback across hosts.
// Needs root; without it every test is SKIPPED, saying why.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/cluster_fixture.h"
#include "tests/fashion_mnist_jobs.h"

namespace dpfleet {
namespace {

constexpr int kOperatorHost = 0;  // This test process.
constexpr int kServicesHost = 1;  // The accountant and the coordinator.

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class MultiHostTest : public ClusterTest {
 protected:
  struct CoordinatorFlags {
    int resume_wait_s = 2;
    int max_attempts = 3;
  };

  static std::string Hosts() { return absl::StrCat("bash ", Runfiles(), "/tests/netns_hosts.sh"); }
  static std::string Namespace(int host) { return absl::StrCat(prefix_, "-h", host); }
  static std::string Address(int host) { return absl::StrCat("10.77.0.", host + 1); }

  // Makes the switch and the operator's host, and moves this process onto it. Network namespaces
  // belong to threads: gRPC's threads, all made later, inherit this one.
  static void SetUpTestSuite() {
    prefix_ = absl::StrCat("dpf", getpid());
    std::string output;
    if (RunCommand(absl::StrCat(Hosts(), " up ", prefix_, " 2>&1"), &output) != 0) {
      skip_reason_ = absl::StrCat("cannot make test hosts as network namespaces: ", output);
      return;
    }
    if (RunCommand(absl::StrCat(Hosts(), " add ", prefix_, " ", kOperatorHost, " 2>&1"), &output) !=
        0) {
      skip_reason_ = absl::StrCat("cannot add a test host: ", output);
      return;
    }
    const int fd = open(absl::StrCat("/run/netns/", Namespace(kOperatorHost)).c_str(), O_RDONLY);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      skip_reason_ = absl::StrCat("cannot enter the operator's host: ", strerror(errno));
    }
    if (fd >= 0) close(fd);
  }

  static void TearDownTestSuite() {
    std::string output;
    RunCommand(absl::StrCat(Hosts(), " down ", prefix_, " 2>&1"), &output);
  }

  void SetUp() override { StartServices({}); }

  void TearDown() override {
    for (int host : hosts_) KillHost(host);
  }

  // Starts the accountant and the coordinator on the services host and connects the clients.
  void StartServices(const CoordinatorFlags& flags) {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    state_dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(state_dir_);
    // Hosts of earlier tests are gone; their indices are not reused.
    next_host_ = std::max(next_host_, kServicesHost);
    const int services = AddHost();
    ASSERT_EQ(services, next_host_ - 1);
    MakeCertificates({"accountant:accountant", "coordinator:coordinator", "admin:admin"});
    Launch(services, "accountant", "accountant/dpfleet-accountant",
           {"--listen", Address(services) + ":0", "--ledger", state_dir_ + "/ledger.db",
            "--ticket_key", state_dir_ + "/tls/ticket.key"});
    services_host_ = services;
    coordinator_flags_ = flags;
    accountant_ = Address(services) + ":" + WaitForPort("accountant");
    LaunchCoordinator("0");
    coordinator_ = Address(services) + ":" + WaitForPort("coordinator");
    Connect(coordinator_, accountant_, Certificate("admin"));
  }

  // SIGKILLs the coordinator and starts it again on the same address and job store.
  void KillAndRestartCoordinator() {
    const int pid = std::stoi(ReadFile(state_dir_ + "/coordinator.pid"));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    while (kill(pid, 0) == 0) absl::SleepFor(absl::Milliseconds(20));
    std::filesystem::rename(state_dir_ + "/coordinator.log",
                            state_dir_ + "/coordinator.previous.log");
    std::filesystem::remove(state_dir_ + "/coordinator.port");
    LaunchCoordinator(coordinator_.substr(coordinator_.rfind(':') + 1));
    WaitForPort("coordinator");
  }

  void LaunchCoordinator(const std::string& port) {
    Launch(services_host_, "coordinator", "coordinator/dpfleet-coordinator",
           {"--listen", Address(services_host_) + ":" + port, "--accountant", accountant_,
            "--jobs_db", state_dir_ + "/jobs.db", "--collective_timeout_s", "10", "--resume_wait_s",
            absl::StrCat(coordinator_flags_.resume_wait_s), "--max_attempts",
            absl::StrCat(coordinator_flags_.max_attempts)});
  }

  // Restarts the services with other flags (on a new host, with a fresh ledger and job store).
  void RestartServices(const CoordinatorFlags& flags) {
    for (int host : hosts_) KillHost(host);
    hosts_.clear();
    std::filesystem::remove_all(state_dir_);
    StartServices(flags);
  }

  // Starts a worker on a new host, serving Fashion-MNIST; returns the host's index.
  int StartWorker(const std::vector<std::string>& extra_flags = {}) {
    const int host = AddHost();
    MakeCertificates({absl::StrCat("worker-h", host, ":worker")});
    std::vector<std::string> flags = {"--coordinator",
                                      coordinator_,
                                      "--listen",
                                      Address(host) + ":0",
                                      "--advertise_host",
                                      Address(host),
                                      "--data_dir",
                                      "/usr/share/datasets",
                                      "--threads",
                                      "1",
                                      "--ticket_public_key",
                                      state_dir_ + "/tls/ticket.pub"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    Launch(host, absl::StrCat("worker-h", host), "worker/dpfleet-worker", flags);
    WaitForPort(absl::StrCat("worker-h", host));
    return host;
  }

  // Waits until the coordinator counts `count` live workers.
  void WaitForWorkers(int count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (AliveWorkers() < count && absl::Now() < deadline) absl::SleepFor(absl::Seconds(0.1));
    ASSERT_GE(AliveWorkers(), count) << Logs();
  }

  // The host dies: every process on it is SIGKILLed and its cable pulled, so its peers see
  // silence, not closed connections.
  void KillHost(int host) {
    std::string output;
    RunCommand(absl::StrCat(Hosts(), " kill ", prefix_, " ", host, " 2>&1"), &output);
  }

  // Every log of this test, for failure messages.
  std::string Logs() {
    std::string logs;
    for (const auto& entry : std::filesystem::directory_iterator(state_dir_)) {
      if (entry.path().extension() != ".log") continue;
      absl::StrAppend(&logs, "\n--- ", entry.path().filename().string(), "\n",
                      ReadFile(entry.path().string()));
    }
    return logs;
  }

  std::string coordinator_;

 private:
  int AddHost() {
    const int host = next_host_++;
    std::string output;
    EXPECT_EQ(RunCommand(absl::StrCat(Hosts(), " add ", prefix_, " ", host, " 2>&1"), &output), 0)
        << output;
    hosts_.push_back(host);
    return host;
  }

  // Certificates of this test's cluster CA, NAME:ROLE each (deploy/make_certs.sh).
  void MakeCertificates(const std::vector<std::string>& principals) {
    MakeCertificatesIn(state_dir_ + "/tls", principals);
  }

  TlsMaterial Certificate(const std::string& name) {
    return CertificateIn(state_dir_ + "/tls", name);
  }

  // Runs binary `path` (under the runfiles) on `host` in the background, with the certificate of
  // principal NAME; its stderr and stdout go to NAME.log, and it writes its port to NAME.port.
  void Launch(int host, const std::string& name, const std::string& path,
              const std::vector<std::string>& flags) {
    const std::string command = absl::StrCat(
        "ip netns exec ", Namespace(host), " env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE ",
        Runfiles(), "/", path, " ", absl::StrJoin(flags, " "), " --tls_ca ", state_dir_,
        "/tls/ca.pem --tls_cert ", state_dir_, "/tls/", name, ".pem --tls_key ", state_dir_,
        "/tls/", name, ".key --port_file ", state_dir_, "/", name, ".port >", state_dir_, "/", name,
        ".log 2>&1 & echo $! >", state_dir_, "/", name, ".pid");
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }

  // Waits for NAME's port file; returns the port.
  std::string WaitForPort(const std::string& name) {
    const std::string port_file = absl::StrCat(state_dir_, "/", name, ".port");
    const int pid = std::stoi(ReadFile(absl::StrCat(state_dir_, "/", name, ".pid")));
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (Trimmed(ReadFile(port_file)).empty()) {
      if (kill(pid, 0) != 0 || absl::Now() > deadline) {
        ADD_FAILURE() << name << " did not start" << Logs();
        return "0";
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return Trimmed(ReadFile(port_file));
  }

  static std::string prefix_;
  static std::string skip_reason_;
  static int next_host_;
  std::vector<int> hosts_;
  std::string state_dir_;
  int services_host_ = kServicesHost;
  CoordinatorFlags coordinator_flags_;
  std::string accountant_;
};

std::string MultiHostTest::prefix_;
std::string MultiHostTest::skip_reason_;
int MultiHostTest::next_host_ = kServicesHost;

TEST_F(MultiHostTest, TwoWorkersOnTheirOwnHostsTrainBitIdenticalModels) {
  constexpr int64_t kSteps = 60;
  RegisterDataset(10.0);
  StartWorker();
  StartWorker();
  WaitForWorkers(2);

  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(kSteps, 2), &job).ok());
  job = WaitFor(job.job_id(), Ended);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error() << Logs();
  EXPECT_EQ(job.result().steps_run(), kSteps);
  ASSERT_EQ(job.result().parameter_fingerprints_size(), 2);
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1))
      << "workers on different hosts ended with different parameters";
  EXPECT_GT(job.result().test_accuracy(), 0.6);
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(kSteps, budget.filter()), kEpsilonTolerance);
  std::cout << "2 hosts: " << kSteps << " steps in " << job.result().wall_seconds()
            << " s, test accuracy " << job.result().test_accuracy() << "\n";
}

TEST_F(MultiHostTest, AHostKilledMidJobIsReplacedAndEveryStepThatRanIsCharged) {
  // Long enough for the replacement to register: the job waits for all 3 of its workers.
  RestartServices({.resume_wait_s = 90});
  if (IsSkipped() || HasFatalFailure()) return;
  constexpr int64_t kSteps = 300;  // Checkpoints every 25 steps.
  RegisterDataset(100.0);
  StartWorker();
  StartWorker();
  const int doomed = StartWorker();
  WaitForWorkers(3);

  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(kSteps, 3), &job).ok());
  job =
      WaitFor(job.job_id(), [](const v1::Job& j) { return j.progress().step() >= 40 || Ended(j); });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error() << Logs();
  KillHost(doomed);
  StartWorker();  // A new machine, with a new address.

  job = WaitFor(job.job_id(), Ended, absl::Minutes(4));
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.error() << Logs();
  // It finished on 3 workers, the replacement among them, bit-identical.
  ASSERT_EQ(job.result().parameter_fingerprints_size(), 3) << job.error() << Logs();
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(1));
  EXPECT_EQ(job.result().parameter_fingerprints(0), job.result().parameter_fingerprints(2));
  // The steps since the last checkpoint ran twice; every step that ran is charged.
  EXPECT_GT(job.result().steps_run(), kSteps);
  EXPECT_LE(job.result().steps_run(), kSteps + 25);
  EXPECT_GT(job.result().test_accuracy(), 0.6);
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_LT(job.result().steps_charged(), job.result().steps_run() + kLeaseSteps);
  EXPECT_NEAR(budget.epsilon_committed(), ChargeOf(job.result().steps_charged(), budget.filter()),
              kEpsilonTolerance);
}

TEST_F(MultiHostTest, AJobThatCannotFormItsGroupFailsBeforeItsFirstStepAndIsChargedNothing) {
  RestartServices({.max_attempts = 2});
  if (IsSkipped() || HasFatalFailure()) return;
  RegisterDataset(10.0);
  StartWorker();
  // Misconfigured: its collective address is no address of its host.
  StartWorker({"--collective_host", "10.77.0.250"});
  WaitForWorkers(2);

  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(20, 2), &job).ok());
  job = WaitFor(job.job_id(), Ended, absl::Minutes(2));
  ASSERT_EQ(job.state(), v1::FAILED) << job.error();
  EXPECT_NE(job.error().find("joining the collective group"), std::string::npos) << job.error();
  EXPECT_NE(job.error().find("10.77.0.250"), std::string::npos) << job.error();
  EXPECT_EQ(job.result().steps_run(), 0);
  EXPECT_EQ(job.result().steps_charged(), 0);
  EXPECT_EQ(job.result().epsilon_spent(), 0.0);
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_EQ(budget.epsilon_committed(), 0.0);
  EXPECT_EQ(budget.epsilon_reserved(), 0.0);
}

TEST_F(MultiHostTest, ACoordinatorCrashBeforeTheFirstStepLeavesNothingCharged) {
  RestartServices({.max_attempts = 2});
  if (IsSkipped() || HasFatalFailure()) return;
  RegisterDataset(10.0);
  StartWorker();
  StartWorker({"--collective_host", "10.77.0.250"});  // Its group never forms: 10 s to time out.
  WaitForWorkers(2);

  v1::Job job;
  ASSERT_TRUE(Submit(SmallJob(20, 2), &job).ok());
  job = WaitFor(job.job_id(), [](const v1::Job& j) { return j.state() != v1::QUEUED; });
  ASSERT_EQ(job.state(), v1::RUNNING) << job.error();
  absl::SleepFor(absl::Seconds(2));  // Inside the first attempt's rendezvous.
  KillAndRestartCoordinator();
  if (HasFatalFailure()) return;

  // No step was leased, so the restarted coordinator counts none as started: the attempts left
  // fail like the first, and the job ends charged nothing.
  job = WaitFor(job.job_id(), Ended, absl::Minutes(2));
  ASSERT_EQ(job.state(), v1::FAILED) << job.error();
  EXPECT_NE(job.error().find("attempt 2"), std::string::npos) << job.error();
  EXPECT_EQ(job.result().steps_run(), 0);
  EXPECT_EQ(job.result().steps_charged(), 0);
  const v1::GetBudgetResponse budget = Budget();
  EXPECT_EQ(budget.open_reservations(), 0);
  EXPECT_EQ(budget.epsilon_committed(), 0.0);
  EXPECT_EQ(budget.epsilon_reserved(), 0.0);
}

}  // namespace
}  // namespace dpfleet
