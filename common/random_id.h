#ifndef DPFLEET_COMMON_RANDOM_ID_H_
#define DPFLEET_COMMON_RANDOM_ID_H_

// Identifiers and secrets nobody can predict or make collide, from the kernel's CSPRNG (getrandom).

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace dpfleet {

// Returns e.g. "job-3f9a..." for RandomId("job-", 16). Errors: kInternal when getrandom fails.
absl::StatusOr<std::string> RandomId(const std::string& prefix, size_t bytes);

// Returns `bytes` raw random bytes (a secret, a nonce). Errors: kInternal when getrandom fails.
absl::StatusOr<std::string> RandomBytes(size_t bytes);

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_RANDOM_ID_H_
