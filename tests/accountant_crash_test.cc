// Crash safety of the accountant: many coordinators race to reserve and commit on one dataset while
// the accountant is killed with SIGKILL; after a restart on the same ledger, nothing a client was
// told is lost, nothing is under-counted, and the budget was never exceeded.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "accountant/privacy_filter.h"
#include "common/test_certificates.h"
#include "common/tls.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/dpfleet.grpc.pb.h"

extern char** environ;

namespace dpfleet {
namespace {

constexpr double kQ = 0.01;
constexpr double kSigma = 1.0;
constexpr double kDelta = 1e-5;
constexpr int kClients = 8;

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

class Accountant {
 public:
  // Starts the real binary on the ledger; waits for its port.
  explicit Accountant(const std::string& ledger) {
    const std::string port_file = TempDir() + "/accountant.port";
    std::remove(port_file.c_str());
    const std::string binary =
        absl::StrCat(std::getenv("TEST_SRCDIR"), "/dpfleet/accountant/dpfleet-accountant");
    TestCertificate("accountant", Role::kAccountant);
    const std::string tls = TestCaDir();
    std::vector<std::string> args = {binary,
                                     "--ledger",
                                     ledger,
                                     "--tls_ca",
                                     tls + "/ca.pem",
                                     "--tls_cert",
                                     tls + "/accountant.pem",
                                     "--tls_key",
                                     tls + "/accountant.key",
                                     "--ticket_key",
                                     tls + "/ticket.key",
                                     "--port_file",
                                     port_file};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, binary.c_str(), nullptr, nullptr, argv.data(), environ), 0);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::string port;
    while (port.empty() && absl::Now() < deadline) {
      std::ifstream in(port_file);
      in >> port;
      if (port.empty()) absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_FALSE(port.empty()) << "accountant did not start";
    admin_ = v1::AccountantService::NewStub(MutualTlsChannel(
        "127.0.0.1:" + port, TestCertificate("ops", Role::kAdmin), Role::kAccountant));
    coordinator_ = v1::AccountantService::NewStub(
        MutualTlsChannel("127.0.0.1:" + port, TestCertificate("coordinator", Role::kCoordinator),
                         Role::kAccountant));
  }

  ~Accountant() { Kill(SIGTERM); }

  void Kill(int signal) {
    if (pid_ <= 0) return;
    kill(pid_, signal);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Clients holding an admin's and a coordinator's certificate.
  v1::AccountantService::Stub& as_admin() { return *admin_; }
  v1::AccountantService::Stub& as_coordinator() { return *coordinator_; }

 private:
  pid_t pid_ = -1;
  std::unique_ptr<v1::AccountantService::Stub> admin_;
  std::unique_ptr<v1::AccountantService::Stub> coordinator_;
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return context;
}

// What `filter` (GetBudgetResponse.filter) charges for `steps` steps of the traffic's mechanism.
double FilterEpsilonOfSteps(int64_t steps, const std::string& filter) {
  accountant::AdmittedMechanisms admitted;
  EXPECT_TRUE(
      admitted.Compose({.sampling_rate = kQ, .noise_multiplier = kSigma, .steps = steps}).ok());
  const absl::StatusOr<accountant::PrivacyFilter> parsed = accountant::PrivacyFilter::Parse(filter);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *parsed->Epsilon(admitted, kDelta);
}

// What the clients were told, and what they meant to do.
struct ClientRecord {
  absl::Mutex mu;
  std::map<std::string, int64_t> intended_commit;  // Acknowledged reservation -> steps to commit.
  std::map<std::string, int64_t> acknowledged_lease;  // Steps leased to a group, acknowledged.
  std::map<std::string, int64_t> acknowledged_commit;
};

TEST(AccountantCrash, SigkillMidTrafficLosesNothingAcknowledged) {
  const std::string ledger = TempDir() + "/ledger.db";
  // Room for some of the traffic, not all.
  const double budget = FilterEpsilonOfSteps(8000, accountant::PrivacyFilter::Legacy().Serialize());
  ClientRecord record;
  std::atomic<int> refused_for_budget{0};
  {
    Accountant accountant(ledger);
    v1::RegisterDatasetRequest dataset;
    dataset.set_dataset("mnist");
    dataset.set_epsilon_budget(budget);
    dataset.set_delta(kDelta);
    v1::RegisterDatasetResponse registered;
    ASSERT_TRUE(accountant.as_admin().RegisterDataset(Context().get(), dataset, &registered).ok());

    std::atomic<bool> down{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        std::mt19937_64 rng(c);  // Public test randomness for request sizes.
        for (int i = 0; !down; ++i) {
          const std::string key = absl::StrCat("client-", c, "-", i);
          v1::ReserveRequest reserve;
          reserve.set_dataset("mnist");
          reserve.set_job_id(key);
          reserve.set_idempotency_key(key);
          reserve.mutable_mechanism()->set_sampling_rate(kQ);
          reserve.mutable_mechanism()->set_noise_multiplier(kSigma);
          reserve.mutable_mechanism()->set_steps(50 + rng() % 100);
          reserve.set_clip_norm(1.0);
          reserve.set_submitter("ops");  // The registrant, who holds a grant.
          v1::ReserveResponse reserved;
          const grpc::Status status =
              accountant.as_coordinator().Reserve(Context().get(), reserve, &reserved);
          if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++refused_for_budget;
            continue;
          }
          if (!status.ok()) break;  // The accountant is gone.
          const int64_t steps = static_cast<int64_t>(rng() % (reserve.mechanism().steps() + 1));
          {
            absl::MutexLock lock(&record.mu);
            record.intended_commit[reserved.reservation_id()] = steps;
          }
          // The workers' steps are leased first, as a job's are.
          v1::LeaseRequest lease;
          lease.set_reservation_id(reserved.reservation_id());
          lease.add_rank_nonces(absl::StrCat(absl::Hex(rng(), absl::kZeroPad16)));
          lease.add_shards()->set_end(60000);
          lease.set_end_step(steps);
          v1::LeaseResponse leased;
          if (!accountant.as_coordinator().Lease(Context().get(), lease, &leased).ok()) break;
          {
            absl::MutexLock lock(&record.mu);
            record.acknowledged_lease[reserved.reservation_id()] = steps;
          }
          v1::CommitRequest commit;
          commit.set_reservation_id(reserved.reservation_id());
          commit.set_steps_run(steps);
          v1::CommitResponse committed;
          if (!accountant.as_coordinator().Commit(Context().get(), commit, &committed).ok()) break;
          absl::MutexLock lock(&record.mu);
          record.acknowledged_commit[reserved.reservation_id()] = steps;
        }
      });
    }
    absl::SleepFor(absl::Milliseconds(700));
    accountant.Kill(SIGKILL);
    down = true;
    for (std::thread& t : clients) t.join();
  }
  ASSERT_GT(record.acknowledged_commit.size(), 10u) << "too little traffic before the kill";

  Accountant restarted(ledger);
  // Commits `steps` of reservation `id`; returns the steps charged, or -1 when refused.
  auto commit = [&restarted](const std::string& id, int64_t steps) -> int64_t {
    v1::CommitRequest request;
    request.set_reservation_id(id);
    request.set_steps_run(steps);
    v1::CommitResponse response;
    const grpc::Status status =
        restarted.as_coordinator().Commit(Context().get(), request, &response);
    return status.ok() ? response.steps_committed() : -1;
  };
  // Every acknowledged commit is there, with its steps; a commit claiming fewer is raised to them.
  for (const auto& [id, steps] : record.acknowledged_commit) {
    EXPECT_EQ(commit(id, steps), steps) << id;
    EXPECT_EQ(commit(id, 0), steps) << id << " lost its committed steps";
  }
  // Every acknowledged reservation is there, and so is every acknowledged lease: a client that
  // claims no step ran is charged what it leased.
  int64_t total_steps = 0;
  for (const auto& [id, steps] : record.intended_commit) {
    const int64_t charged = commit(id, 0);
    ASSERT_GE(charged, 0) << id;
    const auto leased = record.acknowledged_lease.find(id);
    if (leased != record.acknowledged_lease.end()) EXPECT_EQ(charged, leased->second) << id;
    total_steps += charged;
  }
  v1::GetBudgetRequest get;
  get.set_dataset("mnist");
  v1::GetBudgetResponse after;
  ASSERT_TRUE(restarted.as_admin().GetBudget(Context().get(), get, &after).ok());
  // Reservations made but never acknowledged (in flight at the kill) still count in full: the
  // ledger can only count more than the clients know of, never less, and never more than the
  // budget.
  EXPECT_GE(after.epsilon_reserved(), FilterEpsilonOfSteps(total_steps, after.filter()) - 1e-9);
  EXPECT_LE(after.open_reservations(), kClients);
  EXPECT_LE(after.epsilon_reserved(), budget + 1e-12);
  std::printf("acknowledged commits %zu, leases %zu, reservations %zu, refused for budget %d\n",
              record.acknowledged_commit.size(), record.acknowledged_lease.size(),
              record.intended_commit.size(), refused_for_budget.load());
}

}  // namespace
}  // namespace dpfleet
