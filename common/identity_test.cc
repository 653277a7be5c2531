#include "common/identity.h"

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

TEST(PrincipalFromCertificate, ReadsTheNameAndTheOneRole) {
  const Principal alice = *PrincipalFromCertificate("alice", {"submitter.dpfleet"});
  EXPECT_EQ(alice.name, "alice");
  EXPECT_EQ(alice.role, Role::kSubmitter);
  // Other names may sit beside the role's.
  EXPECT_EQ(PrincipalFromCertificate("w-3", {"w-3.example.org", "worker.dpfleet"})->role,
            Role::kWorker);
}

TEST(PrincipalFromCertificate, RefusesNoRoleTwoRolesOrNoName) {
  for (const std::vector<std::string>& names : std::vector<std::vector<std::string>>{
           {}, {"admin.example.org"}, {"dpfleet"}, {"admin.dpfleet", "worker.dpfleet"}}) {
    const absl::StatusOr<Principal> principal = PrincipalFromCertificate("mallory", names);
    EXPECT_EQ(principal.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_NE(principal.status().message().find("exactly one role"), std::string::npos);
  }
  EXPECT_EQ(PrincipalFromCertificate("", {"admin.dpfleet"}).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(CheckRole, NamesTheRpcTheCallerAndTheRolesNeeded) {
  EXPECT_TRUE(CheckRole({"ops", Role::kAdmin}, {Role::kAdmin}, "RegisterDataset").ok());
  const absl::Status denied =
      CheckRole({"bob", Role::kReader}, {Role::kAdmin, Role::kSubmitter}, "SubmitJob");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "SubmitJob needs the role admin or submitter; 'bob' has the role reader");
}

TEST(RoleDnsName, IsTheRoleUnderDpfleet) {
  EXPECT_EQ(RoleDnsName(Role::kCoordinator), "coordinator.dpfleet");
  EXPECT_EQ(RoleDnsName(Role::kAccountant), "accountant.dpfleet");
}

}  // namespace
}  // namespace dpfleet
