#ifndef DPFLEET_ACCOUNTANT_AUTH_H_
#define DPFLEET_ACCOUNTANT_AUTH_H_

// Who may do what to the privacy budget. Every request to the accountant carries a bearer token
// (gRPC metadata "authorization: Bearer <token>"); the token names a principal and its role:
//   admin        registers datasets (and reads);
//   coordinator  reserves, commits and releases charges (and reads);
//   reader       reads budgets and runs privacy queries.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::accountant {

enum class Role { kReader, kCoordinator, kAdmin };

// Returns "reader", "coordinator" or "admin".
std::string RoleName(Role role);

struct Principal {
  std::string name;
  Role role;
};

// Thread-safe after construction.
class TokenAuthenticator {
 public:
  // Reads a token file: one "<token> <role> <name>" per line; blank lines and lines starting with
  // '#' are ignored. Tokens must be at least 16 characters. Errors: kNotFound for a missing file;
  // kInvalidArgument naming the line of a malformed entry, an unknown role or a repeated token.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromText(const std::string& text);

  // Returns the principal an "authorization" header value ("Bearer <token>") identifies.
  // Errors: kUnauthenticated when the header is missing, malformed or names no known token. Tokens
  // are compared in constant time.
  absl::StatusOr<Principal> Authenticate(const std::string& authorization) const;

  // Returns the principal if it may act as `needed` (admin may do everything a coordinator or
  // reader may, except that only coordinators reserve and commit). Errors: kUnauthenticated as
  // above; kPermissionDenied naming the role needed.
  absl::StatusOr<Principal> Authorize(const std::string& authorization, Role needed) const;

 private:
  struct Entry {
    std::string token;
    Principal principal;
  };
  explicit TokenAuthenticator(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  const std::vector<Entry> entries_;
};

}  // namespace dpfleet::accountant

#endif  // DPFLEET_ACCOUNTANT_AUTH_H_
