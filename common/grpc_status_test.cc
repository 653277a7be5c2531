#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

TEST(GrpcStatus, RoundTripKeepsCodeAndMessage) {
  const absl::Status original = absl::ResourceExhaustedError("budget of 'mnist' spent");
  const grpc::Status as_grpc = ToGrpcStatus(original);
  EXPECT_EQ(as_grpc.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(as_grpc.error_message(), "budget of 'mnist' spent");
  EXPECT_EQ(FromGrpcStatus(as_grpc), original);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

}  // namespace
}  // namespace dpfleet
