#include "common/pem_file.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpfleet {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " is required"));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path, " (", flag, ")"));
  std::stringstream contents;
  contents << in.rdbuf();
  if (contents.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, " (", flag, ") is not a PEM file"));
  }
  return contents.str();
}

absl::StatusOr<std::string> ReadPrivateKeyFile(const std::string& path, const std::string& flag) {
  struct stat key_stat;
  if (!path.empty() && stat(path.c_str(), &key_stat) == 0 && (key_stat.st_mode & S_IRWXO) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the private key %s (%s) may be read by anyone (mode %04o); chmod 600 it",
                        path, flag, key_stat.st_mode & 07777));
  }
  return ReadPemFile(path, flag);
}

}  // namespace dpfleet
