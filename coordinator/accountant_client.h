#ifndef DPFLEET_COORDINATOR_ACCOUNTANT_CLIENT_H_
#define DPFLEET_COORDINATOR_ACCOUNTANT_CLIENT_H_

// The coordinator's calls to the AccountantService, each with a deadline, as absl::Status.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/dpfleet.grpc.pb.h"

namespace dpfleet::coordinator {

// Thread-safe.
class AccountantClient {
 public:
  // `channel` authenticates this coordinator to the accountant (common/tls.h: a certificate with
  // the coordinator role).
  AccountantClient(std::shared_ptr<grpc::Channel> channel, absl::Duration deadline)
      : stub_(v1::AccountantService::NewStub(std::move(channel))), deadline_(deadline) {}

  absl::StatusOr<v1::CalibrateNoiseResponse> CalibrateNoise(
      const v1::CalibrateNoiseRequest& request);
  absl::StatusOr<v1::ComputeEpsilonResponse> ComputeEpsilon(
      const v1::ComputeEpsilonRequest& request);
  absl::StatusOr<v1::ReserveResponse> Reserve(const v1::ReserveRequest& request);
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& request);
  absl::StatusOr<v1::CommitResponse> Commit(const v1::CommitRequest& request);
  absl::Status Release(const v1::ReleaseRequest& request);

 private:
  // Calls `rpc` with a fresh context and the deadline; errors are prefixed with "accountant".
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (v1::AccountantService::Stub::*rpc)(
                                    grpc::ClientContext*, const Request&, Response*),
                                const Request& request);

  std::unique_ptr<v1::AccountantService::Stub> stub_;
  const absl::Duration deadline_;
};

}  // namespace dpfleet::coordinator

#endif  // DPFLEET_COORDINATOR_ACCOUNTANT_CLIENT_H_
