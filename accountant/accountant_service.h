#ifndef DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_
#define DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_

// AccountantService: translates proto requests into calls on the Ledger and the accounting library.
// No accounting math or SQL here.

#include <algorithm>
#include <optional>
#include <thread>

#include "absl/time/time.h"
#include "accountant/ledger.h"
#include "common/admission_ticket.h"
#include "common/call_limiter.h"
#include "common/identity.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::accountant {

// Returns the mechanism a proto describes, or kInvalidArgument naming the bad field.
absl::StatusOr<SubsampledGaussian> MechanismFromProto(const v1::MechanismSpec& spec);

// The largest request the accountant accepts: its requests are a few hundred bytes (a Lease for
// a group of 1,024 ranks, the largest, under 40 KiB).
constexpr int kMaxAccountantRequestBytes = 64 << 10;

// Every RPC first identifies the caller by its verified client certificate and checks its role
// (common/identity.h): RegisterDataset, GrantAccess and RevokeAccess need admin; Reserve, Lease,
// Commit and Release need coordinator; GetBudget needs admin, submitter, reader or coordinator;
// the privacy math any role. Failures are UNAUTHENTICATED or PERMISSION_DENIED and leave the
// ledger untouched.
class AccountantServiceImpl final : public v1::AccountantService::Service {
 public:
  // `ledger` and `signer` (which signs Lease's tickets, valid for `ticket_lifetime`) must outlive
  // the service.
  AccountantServiceImpl(Ledger* ledger, const TicketSigner* signer,
                        absl::Duration ticket_lifetime = absl::Minutes(10))
      : ledger_(ledger), signer_(signer), ticket_lifetime_(ticket_lifetime) {}

  grpc::Status RegisterDataset(grpc::ServerContext* context,
                               const v1::RegisterDatasetRequest* request,
                               v1::RegisterDatasetResponse* response) override;
  grpc::Status GetBudget(grpc::ServerContext* context, const v1::GetBudgetRequest* request,
                         v1::GetBudgetResponse* response) override;
  grpc::Status Reserve(grpc::ServerContext* context, const v1::ReserveRequest* request,
                       v1::ReserveResponse* response) override;
  grpc::Status Lease(grpc::ServerContext* context, const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override;
  grpc::Status Commit(grpc::ServerContext* context, const v1::CommitRequest* request,
                      v1::CommitResponse* response) override;
  grpc::Status Release(grpc::ServerContext* context, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse* response) override;
  grpc::Status GrantAccess(grpc::ServerContext* context, const v1::GrantAccessRequest* request,
                           v1::GrantAccessResponse* response) override;
  grpc::Status RevokeAccess(grpc::ServerContext* context, const v1::RevokeAccessRequest* request,
                            v1::RevokeAccessResponse* response) override;
  grpc::Status ComputeEpsilon(grpc::ServerContext* context,
                              const v1::ComputeEpsilonRequest* request,
                              v1::ComputeEpsilonResponse* response) override;
  grpc::Status CalibrateNoise(grpc::ServerContext* context,
                              const v1::CalibrateNoiseRequest* request,
                              v1::CalibrateNoiseResponse* response) override;

 private:
  Ledger* const ledger_;
  const TicketSigner* const signer_;
  // A place among the PLD computations for `caller` when `method` is PLD (nullopt otherwise).
  // Errors: kResourceExhausted from CallLimiter::Acquire.
  absl::StatusOr<std::optional<CallLimiter::Slot>> CostlyCallSlot(const Principal& caller,
                                                                  AccountingMethod method);

  const absl::Duration ticket_lifetime_;
  // PLD accounting costs up to seconds of a core per call: one at a time per caller, and no more
  // at once than the machine has cores.
  CallLimiter pld_calls_{"PLD computations", 1,
                         std::max(1, static_cast<int>(std::thread::hardware_concurrency()))};
};

// Returns the ledger's session key of the group a lease names (its ranks' nonces, hex, in rank
// order). Errors: kInvalidArgument when the group is empty, a nonce is not 16 bytes, the shards
// are not one per rank, or two shards overlap (an example sampled twice in a step would have
// twice the sensitivity the accountant charged for).
absl::StatusOr<std::string> SessionOfGroup(const v1::LeaseRequest& request);

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_ACCOUNTANT_SERVICE_H_
