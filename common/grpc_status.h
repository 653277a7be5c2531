#ifndef DPFLEET_COMMON_GRPC_STATUS_H_
#define DPFLEET_COMMON_GRPC_STATUS_H_

// The one bridge between absl::Status and grpc::Status. Their codes share google.rpc.Code numbers,
// so the conversion keeps the code and the message unchanged in both directions.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace dpfleet {

// Returns the gRPC status with the same code and message as `status`.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Returns the absl status with the same code and message as `status`.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_GRPC_STATUS_H_
