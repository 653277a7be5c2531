#include "accountant/auth.h"

#include "gtest/gtest.h"

namespace dpfleet::accountant {
namespace {

constexpr char kTokens[] = R"(# token role name
admin-token-0123456789 admin alice
coord-token-0123456789 coordinator coordinator-1

reader-token-012345678 reader dashboards
)";

TEST(TokenAuthenticator, IdentifiesPrincipalsAndEnforcesRoles) {
  auto auth = *TokenAuthenticator::FromText(kTokens);
  const Principal alice = *auth->Authenticate("Bearer admin-token-0123456789");
  EXPECT_EQ(alice.name, "alice");
  EXPECT_EQ(alice.role, Role::kAdmin);

  EXPECT_TRUE(auth->Authorize("Bearer admin-token-0123456789", Role::kAdmin).ok());
  EXPECT_TRUE(auth->Authorize("Bearer reader-token-012345678", Role::kReader).ok());
  EXPECT_TRUE(auth->Authorize("Bearer coord-token-0123456789", Role::kCoordinator).ok());
  // Only coordinators reserve and commit; only admins register datasets.
  const auto admin_reserving = auth->Authorize("Bearer admin-token-0123456789", Role::kCoordinator);
  EXPECT_EQ(admin_reserving.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(admin_reserving.status().message().find("coordinator"), std::string::npos);
  EXPECT_EQ(auth->Authorize("Bearer coord-token-0123456789", Role::kAdmin).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(auth->Authorize("Bearer reader-token-012345678", Role::kCoordinator).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(TokenAuthenticator, RefusesMissingOrUnknownTokens) {
  auto auth = *TokenAuthenticator::FromText(kTokens);
  EXPECT_EQ(auth->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth->Authenticate("admin-token-0123456789").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth->Authenticate("Bearer admin-token-012345678X").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenAuthenticator, RefusesMalformedFiles) {
  EXPECT_EQ(TokenAuthenticator::FromText("short admin a\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  const auto bad_role = TokenAuthenticator::FromText("admin-token-0123456789 root alice\n");
  EXPECT_NE(bad_role.status().message().find("line 1"), std::string::npos);
  EXPECT_EQ(TokenAuthenticator::FromText("admin-token-0123456789 admin a\n"
                                         "admin-token-0123456789 reader b\n")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenAuthenticator::FromFile("/nonexistent/tokens").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dpfleet::accountant
