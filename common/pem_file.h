#ifndef DPFLEET_COMMON_PEM_FILE_H_
#define DPFLEET_COMMON_PEM_FILE_H_

// Reading the PEM files a process is configured with: certificates, public keys, private keys.

#include <string>

#include "absl/status/statusor.h"

namespace dpfleet {

// Returns the contents of the PEM file at `path`, named by `flag` in every message. Errors:
// kInvalidArgument for an empty path ("<flag> is required") or a file that is not PEM; kNotFound
// for a file that cannot be read.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag);

// ReadPemFile for a private key, which must not be readable by everyone: kFailedPrecondition,
// with the chmod that fixes it, when any world permission bit is set (a group may read it, as
// Kubernetes' fsGroup arranges).
absl::StatusOr<std::string> ReadPrivateKeyFile(const std::string& path, const std::string& flag);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_PEM_FILE_H_
