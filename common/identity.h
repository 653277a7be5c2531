#ifndef DPFLEET_COMMON_IDENTITY_H_
#define DPFLEET_COMMON_IDENTITY_H_

// Who is calling. Every dpfleet channel is mutual TLS under one cluster CA (common/tls.h), and a
// peer's identity is read off its verified certificate: the subject's common name is the
// principal's name, and its one subjectAltName DNS:<role>.dpfleet is its role
// (deploy/make_certs.sh makes such certificates). What each role may do:
//   admin        registers datasets and grants them; sees and cancels every job; reads budgets
//                and workers
//   submitter    submits jobs, and sees and cancels its own; reads budgets
//   reader       reads budgets, jobs (without their private diagnostics) and workers
//   coordinator  reserves, leases, commits and releases budget; drives the workers
//   worker       registers itself with the coordinator and heartbeats
//   accountant   serves the ledger (the role clients check the accountant's certificate for)

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace dpfleet {

enum class Role { kAdmin, kSubmitter, kReader, kCoordinator, kWorker, kAccountant };

// Returns "admin", "submitter", "reader", "coordinator", "worker" or "accountant".
std::string RoleName(Role role);

// Returns the subjectAltName a certificate of `role` carries: "<role>.dpfleet".
std::string RoleDnsName(Role role);

struct Principal {
  std::string name;
  Role role;
};

// Returns the principal a verified certificate names: `common_name`, and the role of the one
// entry of `subject_alt_names` of the form <role>.dpfleet. Errors: kUnauthenticated when the
// common name is empty, or when no entry or more than one names a role.
absl::StatusOr<Principal> PrincipalFromCertificate(
    const std::string& common_name, const std::vector<std::string>& subject_alt_names);

// Returns the caller of the RPC in `context`, from the certificate its TLS handshake verified.
// Errors: kUnauthenticated when the channel carries no verified certificate, or as above.
absl::StatusOr<Principal> CallerOf(const grpc::ServerContextBase& context);

// Returns the caller if its role is one of `allowed`. Errors: kUnauthenticated as CallerOf;
// kPermissionDenied naming `rpc`, the caller, its role and the roles that may call it.
absl::StatusOr<Principal> Authorize(const grpc::ServerContext& context,
                                    std::initializer_list<Role> allowed, absl::string_view rpc);

// The pure part of Authorize, for a caller already identified.
absl::Status CheckRole(const Principal& caller, std::initializer_list<Role> allowed,
                       absl::string_view rpc);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_IDENTITY_H_
