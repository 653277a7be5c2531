#include "common/random_id.h"

#include <sys/random.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dpfleet {

absl::StatusOr<std::string> RandomBytes(size_t bytes) {
  std::string random(bytes, '\0');
  if (getrandom(random.data(), bytes, 0) != static_cast<ssize_t>(bytes)) {
    return absl::InternalError(absl::StrCat("getrandom failed for ", bytes, " random bytes"));
  }
  return random;
}

absl::StatusOr<std::string> RandomId(const std::string& prefix, size_t bytes) {
  absl::StatusOr<std::string> random = RandomBytes(bytes);
  if (!random.ok()) return random.status();
  return absl::StrCat(prefix, absl::BytesToHexString(*random));
}

}  // namespace dpfleet
