#include "common/status.h"

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

TEST(Status, AnnotatePrefixesMessageAndKeepsOk) {
  EXPECT_EQ(Annotate(absl::NotFoundError("no such job"), "GetJob"),
            absl::NotFoundError("GetJob: no such job"));
  EXPECT_TRUE(Annotate(absl::OkStatus(), "GetJob").ok());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  DPFLEET_ASSIGN_OR_RETURN(int half, Half(x));
  DPFLEET_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(Status, AssignOrReturnPropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dpfleet
