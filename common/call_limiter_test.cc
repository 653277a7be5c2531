#include "common/call_limiter.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

TEST(CallLimiter, RefusesACallerOverItsShareAndEveryoneOverTheTotal) {
  CallLimiter limiter("WatchJob streams", 2, 3);
  std::vector<CallLimiter::Slot> held;
  held.push_back(*limiter.Acquire("alice"));
  held.push_back(*limiter.Acquire("alice"));
  const absl::Status alice = limiter.Acquire("alice").status();
  EXPECT_EQ(alice.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(alice.message().find("'alice' already has 2 WatchJob streams"), std::string::npos)
      << alice;
  held.push_back(*limiter.Acquire("bob"));
  const absl::Status carol = limiter.Acquire("carol").status();
  EXPECT_EQ(carol.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(carol.message().find("3 WatchJob streams are running"), std::string::npos) << carol;
}

TEST(CallLimiter, AFinishedCallGivesItsPlaceBack) {
  CallLimiter limiter("PLD computations", 1, 1);
  {
    std::optional<CallLimiter::Slot> slot(*limiter.Acquire("alice"));
    EXPECT_FALSE(limiter.Acquire("bob").ok());
    CallLimiter::Slot moved = std::move(*slot);  // Moving keeps the one place held.
    slot.reset();
    EXPECT_FALSE(limiter.Acquire("bob").ok());
  }
  EXPECT_TRUE(limiter.Acquire("bob").ok());
  EXPECT_TRUE(limiter.Acquire("alice").ok());
}

}  // namespace
}  // namespace dpfleet
