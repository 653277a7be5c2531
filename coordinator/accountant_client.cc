#include "coordinator/accountant_client.h"

#include "common/grpc_status.h"
#include "common/status.h"

namespace dpfleet::coordinator {

template <typename Request, typename Response>
absl::StatusOr<Response> AccountantClient::Call(
    grpc::Status (v1::AccountantService::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                     Response*),
    const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  Response response;
  const grpc::Status status = (stub_.get()->*rpc)(&context, request, &response);
  if (!status.ok()) return Annotate(FromGrpcStatus(status), "accountant");
  return response;
}

absl::StatusOr<v1::CalibrateNoiseResponse> AccountantClient::CalibrateNoise(
    const v1::CalibrateNoiseRequest& request) {
  return Call(&v1::AccountantService::Stub::CalibrateNoise, request);
}

absl::StatusOr<v1::ComputeEpsilonResponse> AccountantClient::ComputeEpsilon(
    const v1::ComputeEpsilonRequest& request) {
  return Call(&v1::AccountantService::Stub::ComputeEpsilon, request);
}

absl::StatusOr<v1::ReserveResponse> AccountantClient::Reserve(const v1::ReserveRequest& request) {
  return Call(&v1::AccountantService::Stub::Reserve, request);
}

absl::StatusOr<v1::LeaseResponse> AccountantClient::Lease(const v1::LeaseRequest& request) {
  return Call(&v1::AccountantService::Stub::Lease, request);
}

absl::StatusOr<v1::CommitResponse> AccountantClient::Commit(const v1::CommitRequest& request) {
  return Call(&v1::AccountantService::Stub::Commit, request);
}

absl::Status AccountantClient::Release(const v1::ReleaseRequest& request) {
  return Call(&v1::AccountantService::Stub::Release, request).status();
}

}  // namespace dpfleet::coordinator
