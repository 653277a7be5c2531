#include "accountant/accountant_service.h"

#include <atomic>
#include <cstdio>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/serve.h"
#include "common/test_certificates.h"
#include "common/tls.h"
#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

// The service behind a real in-process gRPC server with mutual TLS, so certificates, roles and
// status codes cross the wire.
class AccountantServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path =
        std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/service.db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    ledger_ = *Ledger::Open({.path = path});
    signer_ = TestTicketSigner();
    service_ = std::make_unique<AccountantServiceImpl>(ledger_.get(), signer_.get());
    server_ = *StartServer({.listen_address = "127.0.0.1:0",
                            .credentials = MutualTlsServerCredentials(
                                TestCertificate("accountant", Role::kAccountant)),
                            .max_request_bytes = kMaxAccountantRequestBytes},
                           {service_.get()});
  }

  void TearDown() override { server_.server->Shutdown(); }

  // A client holding the certificate of a principal with `role`.
  v1::AccountantService::Stub& As(Role role) {
    std::unique_ptr<v1::AccountantService::Stub>& stub = stubs_[role];
    if (stub == nullptr) {
      stub = v1::AccountantService::NewStub(
          MutualTlsChannel(absl::StrCat("127.0.0.1:", server_.port),
                           TestCertificate("a-" + RoleName(role), role), Role::kAccountant));
    }
    return *stub;
  }

  // The budget of `dataset`, as a reader sees it.
  v1::GetBudgetResponse Budget(const std::string& dataset) {
    v1::GetBudgetRequest request;
    request.set_dataset(dataset);
    v1::GetBudgetResponse response;
    EXPECT_TRUE(As(Role::kReader).GetBudget(Context().get(), request, &response).ok());
    return response;
  }

  static v1::CalibrateNoiseRequest CalibrateRequest(double q, int64_t steps, double epsilon,
                                                    double delta) {
    v1::CalibrateNoiseRequest request;
    request.set_sampling_rate(q);
    request.set_steps(steps);
    request.set_target_epsilon(epsilon);
    request.set_delta(delta);
    return request;
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  grpc::Status Register(Role role, const std::string& dataset) {
    v1::RegisterDatasetRequest request;
    request.set_dataset(dataset);
    request.set_epsilon_budget(4.0);
    request.set_delta(1e-5);
    v1::RegisterDatasetResponse response;
    return As(role).RegisterDataset(Context().get(), request, &response);
  }

  static v1::ReserveRequest SmallReservation(const std::string& key) {
    v1::ReserveRequest reserve;
    reserve.set_dataset("fashion-mnist");
    reserve.set_job_id("job-" + key);
    reserve.set_idempotency_key(key);
    reserve.mutable_mechanism()->set_sampling_rate(0.01);
    reserve.mutable_mechanism()->set_noise_multiplier(1.0);
    reserve.mutable_mechanism()->set_steps(100);
    reserve.set_clip_norm(0.5);
    reserve.set_submitter("a-admin");  // Registered the dataset, so holds a grant on it.
    return reserve;
  }

  // A lease of steps [first, end) of `reservation_id` for a group of `ranks` ranks.
  static v1::LeaseRequest GroupLease(const std::string& reservation_id, int ranks, int64_t first,
                                     int64_t end) {
    v1::LeaseRequest lease;
    lease.set_reservation_id(reservation_id);
    for (int rank = 0; rank < ranks; ++rank) {
      lease.add_rank_nonces(std::string(16, static_cast<char>('a' + rank)));
      v1::ShardRange* shard = lease.add_shards();
      shard->set_begin(rank * 100);
      shard->set_end(rank * 100 + 100);
    }
    lease.set_first_step(first);
    lease.set_end_step(end);
    return lease;
  }

  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<TicketSigner> signer_;
  std::unique_ptr<AccountantServiceImpl> service_;
  RunningServer server_;
  std::map<Role, std::unique_ptr<v1::AccountantService::Stub>> stubs_;
};

TEST_F(AccountantServiceTest, ReserveCommitAndReadBudget) {
  ASSERT_TRUE(Register(Role::kAdmin, "fashion-mnist").ok());
  v1::ReserveResponse reserved;
  ASSERT_TRUE(
      As(Role::kCoordinator).Reserve(Context().get(), SmallReservation("k1"), &reserved).ok());
  EXPECT_FALSE(reserved.reservation_id().empty());

  v1::CommitRequest commit;
  commit.set_reservation_id(reserved.reservation_id());
  commit.set_steps_run(100);
  v1::CommitResponse committed;
  ASSERT_TRUE(As(Role::kCoordinator).Commit(Context().get(), commit, &committed).ok());
  EXPECT_NEAR(committed.epsilon_committed(), reserved.epsilon_after(), 1e-12);

  v1::GetBudgetRequest get;
  get.set_dataset("fashion-mnist");
  get.mutable_mechanism()->set_sampling_rate(0.01);
  get.mutable_mechanism()->set_noise_multiplier(1.0);
  v1::GetBudgetResponse budget;
  ASSERT_TRUE(As(Role::kReader).GetBudget(Context().get(), get, &budget).ok());
  EXPECT_NEAR(budget.epsilon_remaining(), 4.0 - committed.epsilon_committed(), 1e-12);
  EXPECT_GT(budget.max_steps(), 100);
  EXPECT_LT(budget.epsilon_committed_fixed_composition(), budget.epsilon_committed());
}

TEST_F(AccountantServiceTest, RolesGuardTheBudget) {
  // Only admins register datasets.
  for (Role role : {Role::kCoordinator, Role::kReader, Role::kSubmitter, Role::kWorker}) {
    const grpc::Status status = Register(role, "x");
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << RoleName(role);
    EXPECT_NE(status.error_message().find("RegisterDataset needs the role admin"),
              std::string::npos)
        << status.error_message();
  }
  ASSERT_TRUE(Register(Role::kAdmin, "fashion-mnist").ok());
  // Only the coordinator reserves.
  v1::ReserveResponse reserved;
  for (Role role : {Role::kAdmin, Role::kReader, Role::kSubmitter, Role::kWorker}) {
    const grpc::Status status = As(role).Reserve(Context().get(), SmallReservation("k"), &reserved);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << RoleName(role);
    EXPECT_NE(status.error_message().find("coordinator"), std::string::npos);
  }
  v1::GetBudgetResponse budget = Budget("fashion-mnist");
  EXPECT_EQ(budget.open_reservations(), 0);
  v1::GetBudgetRequest get;
  get.set_dataset("fashion-mnist");
  // Workers have no business with budgets.
  EXPECT_EQ(As(Role::kWorker).GetBudget(Context().get(), get, &budget).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Without a client certificate there is no connection at all.
  auto plaintext = v1::AccountantService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_.port), grpc::InsecureChannelCredentials()));
  EXPECT_EQ(plaintext->GetBudget(Context().get(), get, &budget).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AccountantServiceTest, AnotherCoordinatorCannotSettleAReservation) {
  ASSERT_TRUE(Register(Role::kAdmin, "fashion-mnist").ok());
  v1::ReserveResponse reserved;
  ASSERT_TRUE(
      As(Role::kCoordinator).Reserve(Context().get(), SmallReservation("k1"), &reserved).ok());
  auto rogue = v1::AccountantService::NewStub(MutualTlsChannel(
      absl::StrCat("127.0.0.1:", server_.port),
      TestCertificate("rogue-coordinator", Role::kCoordinator), Role::kAccountant));
  v1::CommitRequest commit;
  commit.set_reservation_id(reserved.reservation_id());
  commit.set_steps_run(0);  // Would leave a running job's steps uncharged.
  v1::CommitResponse committed;
  const grpc::Status status = rogue->Commit(Context().get(), commit, &committed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(status.error_message().find("a-coordinator"), std::string::npos)
      << status.error_message();
  v1::ReleaseRequest release;
  release.set_reservation_id(reserved.reservation_id());
  v1::ReleaseResponse released;
  EXPECT_EQ(rogue->Release(Context().get(), release, &released).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const v1::GetBudgetResponse budget = Budget("fashion-mnist");
  EXPECT_EQ(budget.open_reservations(), 1);
}

TEST_F(AccountantServiceTest, LeaseSignsATicketForTheAdmittedMechanismAndGroup) {
  ASSERT_TRUE(Register(Role::kAdmin, "fashion-mnist").ok());
  v1::ReserveResponse reserved;
  ASSERT_TRUE(
      As(Role::kCoordinator).Reserve(Context().get(), SmallReservation("k1"), &reserved).ok());
  v1::LeaseResponse leased;
  ASSERT_TRUE(As(Role::kCoordinator)
                  .Lease(Context().get(), GroupLease(reserved.reservation_id(), 2, 0, 8), &leased)
                  .ok());
  EXPECT_EQ(leased.steps_leased(), 8);
  const absl::StatusOr<v1::TicketBody> body = TestTicketVerifier()->Verify(leased.ticket());
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->job_id(), "job-k1");
  EXPECT_EQ(body->dataset(), "fashion-mnist");
  EXPECT_EQ(body->sampling_rate(), 0.01);
  EXPECT_EQ(body->noise_multiplier(), 1.0);
  EXPECT_EQ(body->clip_norm(), 0.5);
  EXPECT_EQ(body->rank_nonces_size(), 2);
  EXPECT_EQ(body->shards(1).begin(), 100);
  EXPECT_EQ(body->first_step(), 0);
  EXPECT_EQ(body->end_step(), 8);
  EXPECT_GT(body->expires_unix_ms(), absl::ToUnixMillis(absl::Now()));

  // The leased steps are charged even when the commit claims none ran.
  v1::CommitRequest commit;
  commit.set_reservation_id(reserved.reservation_id());
  v1::CommitResponse committed;
  ASSERT_TRUE(As(Role::kCoordinator).Commit(Context().get(), commit, &committed).ok());
  EXPECT_EQ(committed.steps_committed(), 8);
}

TEST_F(AccountantServiceTest, LeaseRefusesAGroupThatWouldSampleAnExampleTwice) {
  ASSERT_TRUE(Register(Role::kAdmin, "fashion-mnist").ok());
  v1::ReserveResponse reserved;
  ASSERT_TRUE(
      As(Role::kCoordinator).Reserve(Context().get(), SmallReservation("k1"), &reserved).ok());
  v1::LeaseRequest overlapping = GroupLease(reserved.reservation_id(), 3, 0, 8);
  overlapping.mutable_shards(2)->set_begin(50);  // Rows [50, 100) in ranks 0 and 2.
  v1::LeaseResponse leased;
  grpc::Status status = As(Role::kCoordinator).Lease(Context().get(), overlapping, &leased);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("overlap"), std::string::npos) << status.error_message();
  v1::LeaseRequest short_nonce = GroupLease(reserved.reservation_id(), 2, 0, 8);
  short_nonce.set_rank_nonces(1, "short");
  EXPECT_EQ(As(Role::kCoordinator).Lease(Context().get(), short_nonce, &leased).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::LeaseRequest missing_shard = GroupLease(reserved.reservation_id(), 2, 0, 8);
  missing_shard.mutable_shards()->RemoveLast();
  EXPECT_EQ(As(Role::kCoordinator).Lease(Context().get(), missing_shard, &leased).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Only the coordinator leases.
  for (Role role : {Role::kAdmin, Role::kSubmitter, Role::kWorker}) {
    EXPECT_EQ(As(role)
                  .Lease(Context().get(), GroupLease(reserved.reservation_id(), 2, 0, 8), &leased)
                  .error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << RoleName(role);
  }
  // Nothing was leased: the reservation can still be released.
  v1::ReleaseRequest release;
  release.set_reservation_id(reserved.reservation_id());
  v1::ReleaseResponse released;
  EXPECT_TRUE(As(Role::kCoordinator).Release(Context().get(), release, &released).ok());
}

TEST_F(AccountantServiceTest, AdminsGrantSubmittersTheirDatasets) {
  ASSERT_TRUE(Register(Role::kAdmin, "fashion-mnist").ok());
  v1::ReserveRequest for_submitter = SmallReservation("k1");
  for_submitter.set_submitter("a-submitter");
  v1::ReserveResponse reserved;
  grpc::Status status = As(Role::kCoordinator).Reserve(Context().get(), for_submitter, &reserved);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(status.error_message().find("no grant"), std::string::npos) << status.error_message();

  v1::GrantAccessRequest grant;
  grant.set_dataset("fashion-mnist");
  grant.set_principal("a-submitter");
  v1::GrantAccessResponse granted;
  for (Role role : {Role::kCoordinator, Role::kSubmitter, Role::kReader, Role::kWorker}) {
    EXPECT_EQ(As(role).GrantAccess(Context().get(), grant, &granted).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << RoleName(role);
  }
  ASSERT_TRUE(As(Role::kAdmin).GrantAccess(Context().get(), grant, &granted).ok());
  EXPECT_TRUE(As(Role::kCoordinator).Reserve(Context().get(), for_submitter, &reserved).ok());

  v1::RevokeAccessRequest revoke;
  revoke.set_dataset("fashion-mnist");
  revoke.set_principal("a-submitter");
  v1::RevokeAccessResponse revoked;
  EXPECT_EQ(As(Role::kSubmitter).RevokeAccess(Context().get(), revoke, &revoked).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(As(Role::kAdmin).RevokeAccess(Context().get(), revoke, &revoked).ok());
  for_submitter.set_idempotency_key("k2");
  for_submitter.set_job_id("job-k2");
  EXPECT_EQ(As(Role::kCoordinator).Reserve(Context().get(), for_submitter, &reserved).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AccountantServiceTest, BadMechanismIsInvalidArgumentNamingTheField) {
  v1::ComputeEpsilonRequest request;
  request.mutable_mechanism()->set_sampling_rate(0.01);
  request.mutable_mechanism()->set_noise_multiplier(-2);
  request.mutable_mechanism()->set_steps(10);
  request.set_delta(1e-5);
  v1::ComputeEpsilonResponse response;
  const grpc::Status status = As(Role::kReader).ComputeEpsilon(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("mechanism.noise_multiplier"), std::string::npos);
}

TEST_F(AccountantServiceTest, ARequestLargerThanAnyRpcCarriesIsResourceExhausted) {
  ASSERT_TRUE(Register(Role::kAdmin, "mnist").ok());
  v1::ReserveRequest request = SmallReservation("k1");
  request.set_job_id(std::string(kMaxAccountantRequestBytes, 'j'));
  v1::ReserveResponse response;
  const grpc::Status status = As(Role::kCoordinator).Reserve(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  const v1::GetBudgetResponse budget = Budget("mnist");
  EXPECT_EQ(budget.open_reservations(), 0);
}

TEST_F(AccountantServiceTest, PldRunsOneCallAtATimePerCaller) {
  // A PLD calibration takes seconds (a bisection over PLD compositions); while it runs the same
  // caller's next PLD call is refused, another caller's is not, nor the caller's RDP call.
  v1::CalibrateNoiseRequest slow = CalibrateRequest(256.0 / 60000, 20000, 2.0, 1e-5);
  slow.set_method(v1::ACCOUNTING_PLD);
  As(Role::kReader);  // Connect first, so the thread below only waits on the computation.
  std::atomic<bool> done{false};
  grpc::Status slow_status;
  std::thread first([&] {
    v1::CalibrateNoiseResponse response;
    slow_status = As(Role::kReader).CalibrateNoise(Context().get(), slow, &response);
    done = true;
  });
  absl::SleepFor(absl::Milliseconds(300));
  v1::ComputeEpsilonRequest quick;
  quick.mutable_mechanism()->set_sampling_rate(0.01);
  quick.mutable_mechanism()->set_noise_multiplier(1.0);
  quick.mutable_mechanism()->set_steps(100);
  quick.set_delta(1e-5);
  quick.set_method(v1::ACCOUNTING_PLD);
  v1::ComputeEpsilonResponse response;
  const grpc::Status refused = As(Role::kReader).ComputeEpsilon(Context().get(), quick, &response);
  const bool overlapped = !done;
  quick.set_method(v1::ACCOUNTING_RDP);
  const grpc::Status rdp = As(Role::kReader).ComputeEpsilon(Context().get(), quick, &response);
  first.join();
  ASSERT_TRUE(overlapped) << "the PLD calibration ended within 300 ms; nothing overlapped";
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("PLD computations"), std::string::npos);
  EXPECT_TRUE(rdp.ok()) << rdp.error_message();
  EXPECT_TRUE(slow_status.ok()) << slow_status.error_message();
  quick.set_method(v1::ACCOUNTING_PLD);
  EXPECT_TRUE(As(Role::kReader).ComputeEpsilon(Context().get(), quick, &response).ok());
}

TEST_F(AccountantServiceTest, CalibrateNoiseMeetsTheTargetWithTheTightestMethod) {
  v1::CalibrateNoiseRequest request = CalibrateRequest(256.0 / 60000, 1000, 2.0, 1e-5);
  v1::CalibrateNoiseResponse response;
  ASSERT_TRUE(As(Role::kReader).CalibrateNoise(Context().get(), request, &response).ok());
  EXPECT_LE(response.epsilon(), 2.0);
  EXPECT_EQ(response.method(), v1::ACCOUNTING_RDP);
  request.set_sampling_rate(1.0);
  request.set_steps(1);
  request.set_target_epsilon(4.0);
  request.set_delta(1e-6);
  ASSERT_TRUE(As(Role::kReader).CalibrateNoise(Context().get(), request, &response).ok());
  EXPECT_EQ(response.method(), v1::ACCOUNTING_EXACT);
  EXPECT_NEAR(response.noise_multiplier(), 1.19, 0.01);
}

TEST_F(AccountantServiceTest, UnknownDatasetIsNotFound) {
  v1::GetBudgetRequest get;
  get.set_dataset("imagenet");
  v1::GetBudgetResponse budget;
  EXPECT_EQ(As(Role::kReader).GetBudget(Context().get(), get, &budget).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace dpfleet::accountant
