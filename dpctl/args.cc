#include "dpctl/args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dpfleet::dpctl {

absl::StatusOr<Args> Args::Parse(int argc, const char* const* argv, int first) {
  Args args;
  for (int i = first; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.rfind("--", 0) != 0) {
      args.positional_.push_back(word);
      continue;
    }
    std::string name = word.substr(2);
    std::string value = "true";
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      value = argv[++i];
    }
    if (name.empty()) return absl::InvalidArgumentError(absl::StrCat("bad flag '", word, "'"));
    args.flags_[name] = value;
  }
  return args;
}

absl::StatusOr<std::string> Args::String(const std::string& name, const std::string& fallback) {
  used_.insert(name);
  auto it = flags_.find(name);
  return it == flags_.end() ? fallback : it->second;
}

namespace {

// Parses `text` with `parse` (absl::SimpleAtod or SimpleAtoi), naming the flag and `what` on
// failure.
template <typename T, typename Parse>
absl::StatusOr<T> ParseFlag(const std::string& name, const std::string& text, const char* what,
                            Parse parse) {
  T value;
  if (!parse(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " needs ", what, ", got '", text, "'"));
  }
  return value;
}

}  // namespace

absl::StatusOr<double> Args::Double(const std::string& name, std::optional<double> fallback) {
  used_.insert(name);
  auto it = flags_.find(name);
  if (it != flags_.end()) {
    return ParseFlag<double>(name, it->second, "a number",
                             [](absl::string_view t, double* v) { return absl::SimpleAtod(t, v); });
  }
  if (fallback) return *fallback;
  return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
}

absl::StatusOr<int64_t> Args::Int(const std::string& name, std::optional<int64_t> fallback) {
  used_.insert(name);
  auto it = flags_.find(name);
  if (it != flags_.end()) {
    return ParseFlag<int64_t>(name, it->second, "an integer", [](absl::string_view t, int64_t* v) {
      return absl::SimpleAtoi(t, v);
    });
  }
  if (fallback) return *fallback;
  return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
}

bool Args::Bool(const std::string& name) {
  used_.insert(name);
  auto it = flags_.find(name);
  return it != flags_.end() && it->second != "false" && it->second != "0";
}

absl::Status Args::CheckAllUsed() const {
  for (const auto& [name, value] : flags_) {
    if (used_.count(name) == 0)
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
  }
  return absl::OkStatus();
}

}  // namespace dpfleet::dpctl
