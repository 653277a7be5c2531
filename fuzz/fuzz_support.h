#ifndef DPFLEET_FUZZ_FUZZ_SUPPORT_H_
#define DPFLEET_FUZZ_FUZZ_SUPPORT_H_

// What the harnesses share: a way to report a broken invariant (abort, which libFuzzer and the
// corpus tests catch), and inputs as files for the readers that take paths.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace dpfleet::fuzz {

// Aborts, naming `what`, unless `holds`.
inline void Require(bool holds, const std::string& what) {
  if (holds) return;
  std::fprintf(stderr, "fuzz: invariant broken: %s\n", what.c_str());
  std::abort();
}

// A reader must refuse bad bytes with a clear status: never an internal or unknown error (a bug
// of ours), and never with an empty message.
inline void RequireCleanRefusal(const absl::Status& status, const std::string& where) {
  Require(status.code() != absl::StatusCode::kInternal &&
              status.code() != absl::StatusCode::kUnknown && !status.message().empty(),
          where + " refused with " + status.ToString());
}

// `bytes` in a file of its own, deleted with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& bytes, const std::string& name = "input");
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& folder() const { return folder_; }

 private:
  std::string folder_;
  std::string path_;
};

// Writes `bytes` to `path`; aborts if it cannot.
void WriteFileOrDie(const std::string& path, const std::string& bytes);

}  // namespace dpfleet::fuzz

#endif  // DPFLEET_FUZZ_FUZZ_SUPPORT_H_
