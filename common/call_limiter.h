#ifndef DPFLEET_COMMON_CALL_LIMITER_H_
#define DPFLEET_COMMON_CALL_LIMITER_H_

// Bounds how many calls of one costly kind (a long-lived stream, a CPU-heavy computation) run at
// once, per caller and in all, so that one caller cannot take a server's threads or cores from the
// others. A call over either bound is refused at once, with RESOURCE_EXHAUSTED, rather than queued:
// the caller learns why and may retry.

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dpfleet {

class CallLimiter {
 public:
  // `what` names the calls in refusals ("WatchJob streams").
  CallLimiter(std::string what, int per_caller, int total);

  CallLimiter(const CallLimiter&) = delete;
  CallLimiter& operator=(const CallLimiter&) = delete;

  // Holds one of the limiter's places while it lives.
  class Slot {
   public:
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&&) = delete;
    ~Slot();

   private:
    friend class CallLimiter;
    Slot(CallLimiter* limiter, std::string caller);
    CallLimiter* limiter_;
    std::string caller_;
  };

  // Returns a slot for one call by `caller`. Errors: kResourceExhausted, saying which bound was
  // reached, when `caller` already has per_caller calls running or all callers have `total`.
  absl::StatusOr<Slot> Acquire(const std::string& caller);

 private:
  void Release(const std::string& caller);

  const std::string what_;
  const int per_caller_;
  const int total_;
  absl::Mutex mu_;
  std::map<std::string, int> running_ ABSL_GUARDED_BY(mu_);
  int running_total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_CALL_LIMITER_H_
