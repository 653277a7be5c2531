#include "dpctl/args.h"

#include "gtest/gtest.h"

namespace dpfleet::dpctl {
namespace {

TEST(Args, ParsesPositionalAndFlags) {
  const char* argv[] = {"dpctl",  "privacy", "epsilon", "--sampling-rate", "0.01", "--steps=100",
                        "--json", "--delta", "1e-5"};
  Args args = *Args::Parse(9, argv, 1);
  EXPECT_EQ(args.positional(), (std::vector<std::string>{"privacy", "epsilon"}));
  EXPECT_EQ(*args.Double("sampling-rate"), 0.01);
  EXPECT_EQ(*args.Int("steps"), 100);
  EXPECT_TRUE(args.Bool("json"));
  EXPECT_EQ(*args.Double("delta"), 1e-5);
  EXPECT_FALSE(args.Bool("watch"));
  EXPECT_TRUE(args.CheckAllUsed().ok());
}

TEST(Args, ReportsBadAndUnknownFlags) {
  const char* argv[] = {"dpctl", "--steps", "ten", "--colour", "red"};
  Args args = *Args::Parse(5, argv, 1);
  const auto steps = args.Int("steps");
  ASSERT_FALSE(steps.ok());
  EXPECT_NE(steps.status().message().find("--steps"), std::string::npos);
  EXPECT_EQ(args.Double("delta").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*args.Double("delta", 1e-5), 1e-5);
  const absl::Status unused = args.CheckAllUsed();
  EXPECT_NE(unused.message().find("--colour"), std::string::npos);
}

}  // namespace
}  // namespace dpfleet::dpctl
