#include "common/identity.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpfleet {
namespace {

constexpr char kRoleSuffix[] = ".dpfleet";
constexpr Role kRoles[] = {Role::kAdmin,       Role::kSubmitter, Role::kReader,
                           Role::kCoordinator, Role::kWorker,    Role::kAccountant};

std::vector<std::string> PropertyValues(const grpc::AuthContext& auth, const char* name) {
  std::vector<std::string> values;
  for (const grpc::string_ref& value : auth.FindPropertyValues(name)) {
    values.emplace_back(value.data(), value.size());
  }
  return values;
}

}  // namespace

std::string RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kSubmitter:
      return "submitter";
    case Role::kReader:
      return "reader";
    case Role::kCoordinator:
      return "coordinator";
    case Role::kWorker:
      return "worker";
    case Role::kAccountant:
      return "accountant";
  }
  return "unknown";
}

std::string RoleDnsName(Role role) { return RoleName(role) + kRoleSuffix; }

absl::StatusOr<Principal> PrincipalFromCertificate(
    const std::string& common_name, const std::vector<std::string>& subject_alt_names) {
  if (common_name.empty()) {
    return absl::UnauthenticatedError("the client certificate has no common name (principal)");
  }
  std::vector<Role> roles;
  for (const std::string& name : subject_alt_names) {
    for (Role role : kRoles) {
      if (name == RoleDnsName(role)) roles.push_back(role);
    }
  }
  if (roles.size() != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the certificate of '", common_name, "' must name exactly one role as DNS:<role>",
        kRoleSuffix, "; it names ", roles.size(),
        " (subjectAltNames: ", absl::StrJoin(subject_alt_names, ", "), ")"));
  }
  return Principal{common_name, roles.front()};
}

absl::StatusOr<Principal> CallerOf(const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("the caller presented no verified client certificate");
  }
  const std::vector<std::string> common_names = PropertyValues(*auth, GRPC_X509_CN_PROPERTY_NAME);
  return PrincipalFromCertificate(common_names.empty() ? "" : common_names.front(),
                                  PropertyValues(*auth, GRPC_X509_SAN_PROPERTY_NAME));
}

absl::Status CheckRole(const Principal& caller, std::initializer_list<Role> allowed,
                       absl::string_view rpc) {
  if (std::find(allowed.begin(), allowed.end(), caller.role) != allowed.end()) {
    return absl::OkStatus();
  }
  std::vector<std::string> names;
  for (Role role : allowed) names.push_back(RoleName(role));
  return absl::PermissionDeniedError(absl::StrCat(rpc, " needs the role ",
                                                  absl::StrJoin(names, " or "), "; '", caller.name,
                                                  "' has the role ", RoleName(caller.role)));
}

absl::StatusOr<Principal> Authorize(const grpc::ServerContext& context,
                                    std::initializer_list<Role> allowed, absl::string_view rpc) {
  absl::StatusOr<Principal> caller = CallerOf(context);
  if (!caller.ok()) return caller.status();
  if (absl::Status allowed_here = CheckRole(*caller, allowed, rpc); !allowed_here.ok()) {
    return allowed_here;
  }
  return caller;
}

}  // namespace dpfleet
