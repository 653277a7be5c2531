#include "common/call_limiter.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dpfleet {

CallLimiter::CallLimiter(std::string what, int per_caller, int total)
    : what_(std::move(what)), per_caller_(per_caller), total_(total) {}

CallLimiter::Slot::Slot(CallLimiter* limiter, std::string caller)
    : limiter_(limiter), caller_(std::move(caller)) {}

CallLimiter::Slot::Slot(Slot&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)), caller_(std::move(other.caller_)) {}

CallLimiter::Slot::~Slot() {
  if (limiter_ != nullptr) limiter_->Release(caller_);
}

absl::StatusOr<CallLimiter::Slot> CallLimiter::Acquire(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  int& mine = running_[caller];
  if (mine >= per_caller_) {
    return absl::ResourceExhaustedError(absl::StrCat("'", caller, "' already has ", mine, " ",
                                                     what_, " running, the most one caller may"));
  }
  if (running_total_ >= total_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(running_total_, " ", what_, " are running, the most this server allows"));
  }
  ++mine;
  ++running_total_;
  return Slot(this, caller);
}

void CallLimiter::Release(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(caller);
  if (--it->second == 0) running_.erase(it);
  --running_total_;
}

}  // namespace dpfleet
