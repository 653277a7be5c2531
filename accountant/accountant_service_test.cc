#include "accountant/accountant_service.h"

#include <cstdio>

#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

// The service is called directly, without a server: it only translates protos.
class AccountantServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path =
        std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/service.db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    ledger_ = *Ledger::Open({.path = path});
    service_ = std::make_unique<AccountantServiceImpl>(ledger_.get());
  }

  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<AccountantServiceImpl> service_;
  grpc::ServerContext context_;
};

TEST_F(AccountantServiceTest, ReserveCommitAndReadBudget) {
  v1::RegisterDatasetRequest register_request;
  register_request.set_dataset("fashion-mnist");
  register_request.set_epsilon_budget(4.0);
  register_request.set_delta(1e-5);
  v1::RegisterDatasetResponse register_response;
  ASSERT_TRUE(service_->RegisterDataset(&context_, &register_request, &register_response).ok());

  v1::ReserveRequest reserve;
  reserve.set_dataset("fashion-mnist");
  reserve.set_job_id("job-1");
  reserve.set_idempotency_key("job-1");
  reserve.mutable_mechanism()->set_sampling_rate(0.01);
  reserve.mutable_mechanism()->set_noise_multiplier(1.0);
  reserve.mutable_mechanism()->set_steps(100);
  v1::ReserveResponse reserved;
  ASSERT_TRUE(service_->Reserve(&context_, &reserve, &reserved).ok());
  EXPECT_FALSE(reserved.reservation_id().empty());

  v1::CommitRequest commit;
  commit.set_reservation_id(reserved.reservation_id());
  commit.set_steps_run(100);
  v1::CommitResponse committed;
  ASSERT_TRUE(service_->Commit(&context_, &commit, &committed).ok());
  EXPECT_NEAR(committed.epsilon_committed(), reserved.epsilon_after(), 1e-12);

  v1::GetBudgetRequest get;
  get.set_dataset("fashion-mnist");
  v1::GetBudgetResponse budget;
  ASSERT_TRUE(service_->GetBudget(&context_, &get, &budget).ok());
  EXPECT_NEAR(budget.epsilon_remaining(), 4.0 - committed.epsilon_committed(), 1e-12);
}

TEST_F(AccountantServiceTest, BadMechanismIsInvalidArgumentNamingTheField) {
  v1::ComputeEpsilonRequest request;
  request.mutable_mechanism()->set_sampling_rate(0.01);
  request.mutable_mechanism()->set_noise_multiplier(-2);
  request.mutable_mechanism()->set_steps(10);
  request.set_delta(1e-5);
  v1::ComputeEpsilonResponse response;
  const grpc::Status status = service_->ComputeEpsilon(&context_, &request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("mechanism.noise_multiplier"), std::string::npos);
}

TEST_F(AccountantServiceTest, CalibrateNoiseMeetsTheTarget) {
  v1::CalibrateNoiseRequest request;
  request.set_sampling_rate(256.0 / 60000);
  request.set_steps(1000);
  request.set_target_epsilon(2.0);
  request.set_delta(1e-5);
  v1::CalibrateNoiseResponse response;
  ASSERT_TRUE(service_->CalibrateNoise(&context_, &request, &response).ok());
  EXPECT_LE(response.epsilon(), 2.0);
  EXPECT_GT(response.noise_multiplier(), 0.3);
}

TEST_F(AccountantServiceTest, UnknownDatasetIsNotFound) {
  v1::GetBudgetRequest get;
  get.set_dataset("imagenet");
  v1::GetBudgetResponse budget;
  EXPECT_EQ(service_->GetBudget(&context_, &get, &budget).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace dpfleet::accountant
