#include "accountant/auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dpfleet::accountant {
namespace {

constexpr size_t kMinTokenLength = 16;
constexpr char kBearer[] = "Bearer ";

// Compares in time that depends only on the lengths, not on where the strings differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

absl::StatusOr<Role> ParseRole(const std::string& name) {
  if (name == "reader") return Role::kReader;
  if (name == "coordinator") return Role::kCoordinator;
  if (name == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "' (reader, coordinator or admin)"));
}

}  // namespace

std::string RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kCoordinator:
      return "coordinator";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::unique_ptr<TokenAuthenticator>> authenticator = FromText(text.str());
  if (!authenticator.ok()) {
    return absl::Status(authenticator.status().code(),
                        absl::StrCat(path, ": ", authenticator.status().message()));
  }
  return authenticator;
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromText(
    const std::string& text) {
  std::vector<Entry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0][0] == '#') continue;
    if (words.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": expected '<token> <role> <name>'"));
    }
    if (words[0].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": token shorter than ",
                                                     kMinTokenLength, " characters"));
    }
    absl::StatusOr<Role> role = ParseRole(words[1]);
    if (!role.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", role.status().message()));
    }
    for (const Entry& entry : entries) {
      if (entry.token == words[0]) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": repeated token"));
      }
    }
    entries.push_back({words[0], {words[2], *role}});
  }
  return std::unique_ptr<TokenAuthenticator>(new TokenAuthenticator(std::move(entries)));
}

absl::StatusOr<Principal> TokenAuthenticator::Authenticate(const std::string& authorization) const {
  if (authorization.rfind(kBearer, 0) != 0) {
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  }
  const std::string token = authorization.substr(sizeof(kBearer) - 1);
  const Principal* found = nullptr;
  for (const Entry& entry : entries_) {  // No early exit: time does not reveal which entry matched.
    if (ConstantTimeEquals(entry.token, token)) found = &entry.principal;
  }
  if (found == nullptr) return absl::UnauthenticatedError("unknown token");
  return *found;
}

absl::StatusOr<Principal> TokenAuthenticator::Authorize(const std::string& authorization,
                                                        Role needed) const {
  absl::StatusOr<Principal> principal = Authenticate(authorization);
  if (!principal.ok()) return principal;
  const bool allowed = needed == Role::kReader || principal->role == needed;
  if (!allowed) {
    return absl::PermissionDeniedError(absl::StrCat("principal '", principal->name, "' has role ",
                                                    RoleName(principal->role), "; this needs role ",
                                                    RoleName(needed)));
  }
  return principal;
}

}  // namespace dpfleet::accountant
