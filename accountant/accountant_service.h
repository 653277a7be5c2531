#ifndef DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_
#define DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_

// AccountantService: translates proto requests into calls on the Ledger and the accounting library.
// No accounting math or SQL here.

#include "accountant/ledger.h"
#include "common/identity.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::accountant {

// Returns the mechanism a proto describes, or kInvalidArgument naming the bad field.
absl::StatusOr<SubsampledGaussian> MechanismFromProto(const v1::MechanismSpec& spec);

// Every RPC first identifies the caller by its verified client certificate and checks its role
// (common/identity.h): RegisterDataset needs admin; Reserve, Commit and Release need coordinator;
// GetBudget needs admin, submitter, reader or coordinator; the privacy math any role. Failures are
// UNAUTHENTICATED or PERMISSION_DENIED and leave the ledger untouched.
class AccountantServiceImpl final : public v1::AccountantService::Service {
 public:
  // `ledger` must outlive the service.
  explicit AccountantServiceImpl(Ledger* ledger) : ledger_(ledger) {}

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
  Ledger* const ledger_;
};

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_
