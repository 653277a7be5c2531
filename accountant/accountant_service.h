#ifndef DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_
#define DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_

// AccountantService: translates proto requests into calls on the Ledger and the accounting library.
// No accounting math or SQL here.

#include "accountant/auth.h"
#include "accountant/ledger.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::accountant {

// Returns the mechanism a proto describes, or kInvalidArgument naming the bad field.
absl::StatusOr<SubsampledGaussian> MechanismFromProto(const v1::MechanismSpec& spec);

// Every RPC first authenticates the caller's bearer token and checks its role (auth.h):
// RegisterDataset needs admin; Reserve, Commit and Release need coordinator; the rest any role.
// Failures are UNAUTHENTICATED or PERMISSION_DENIED and leave the ledger untouched.
class AccountantServiceImpl final : public v1::AccountantService::Service {
 public:
  // `ledger` and `auth` must outlive the service.
  AccountantServiceImpl(Ledger* ledger, const TokenAuthenticator* auth)
      : ledger_(ledger), auth_(auth) {}

  grpc::Status RegisterDataset(grpc::ServerContext* context,
                               const v1::RegisterDatasetRequest* request,
                               v1::RegisterDatasetResponse* response) override;
  grpc::Status GetBudget(grpc::ServerContext* context, const v1::GetBudgetRequest* request,
                         v1::GetBudgetResponse* response) override;
  grpc::Status Reserve(grpc::ServerContext* context, const v1::ReserveRequest* request,
                       v1::ReserveResponse* response) override;
  grpc::Status Commit(grpc::ServerContext* context, const v1::CommitRequest* request,
                      v1::CommitResponse* response) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status ComputeEpsilon(grpc::ServerContext* context,
                              const v1::ComputeEpsilonRequest* request,
                              v1::ComputeEpsilonResponse* response) override;
  grpc::Status CalibrateNoise(grpc::ServerContext* context,
                              const v1::CalibrateNoiseRequest* request,
                              v1::CalibrateNoiseResponse* response) override;

 private:
  // Returns the caller if its token carries `role`.
  absl::StatusOr<Principal> Authorize(const grpc::ServerContext* context, Role role) const;

  Ledger* const ledger_;
  const TokenAuthenticator* const auth_;
};

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_
