#ifndef DPFLEET_DPCTL_ARGS_H_
#define DPFLEET_DPCTL_ARGS_H_

// Command-line arguments of dpctl: positional words and --long-flags (`--name value` or
// `--name=value`; a flag followed by another flag or nothing is a boolean).

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::dpctl {

class Args {
 public:
  // Parses argv[first..argc). Errors: kInvalidArgument for "--" alone or an empty flag name.
  static absl::StatusOr<Args> Parse(int argc, const char* const* argv, int first);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& name) const { return flags_.count(name) > 0; }

  // Each returns the flag's value, `fallback` when absent, or kInvalidArgument naming the flag when
  // its value does not parse. Reading a flag marks it used.
  absl::StatusOr<std::string> String(const std::string& name, const std::string& fallback = "");
  absl::StatusOr<double> Double(const std::string& name, std::optional<double> fallback = {});
  absl::StatusOr<int64_t> Int(const std::string& name, std::optional<int64_t> fallback = {});
  bool Bool(const std::string& name);

  // Returns kInvalidArgument naming the first flag that no accessor read (a typo, usually).
  absl::Status CheckAllUsed() const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::string> flags_;
  std::set<std::string> used_;
};

}  // namespace dpfleet::dpctl

#endif  // DPFLEET_DPCTL_ARGS_H_
