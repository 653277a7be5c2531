#include "common/random_id.h"

#include <sys/random.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace dpfleet {

absl::StatusOr<std::string> RandomId(const std::string& prefix, size_t bytes) {
  std::vector<unsigned char> random(bytes);
  if (getrandom(random.data(), bytes, 0) != static_cast<ssize_t>(bytes)) {
    return absl::InternalError(absl::StrCat("getrandom failed while creating a ", prefix, " id"));
  }
  std::string id = prefix;
  for (unsigned char b : random) absl::StrAppend(&id, absl::Hex(b, absl::kZeroPad2));
  return id;
}

}  // namespace dpfleet
