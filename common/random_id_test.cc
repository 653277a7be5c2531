#include "common/random_id.h"

#include <set>

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

TEST(RandomId, IsThePrefixAndTwoHexDigitsPerByteAndDoesNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = *RandomId("job-", 16);
    ASSERT_EQ(id.size(), 4u + 32u);
    EXPECT_EQ(id.rfind("job-", 0), 0u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos) << id;
    EXPECT_TRUE(seen.insert(id).second) << id;
  }
}

TEST(RandomBytes, HasTheLengthAskedForAndDoesNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string secret = *RandomBytes(16);
    ASSERT_EQ(secret.size(), 16u);
    EXPECT_TRUE(seen.insert(secret).second);
  }
}

}  // namespace
}  // namespace dpfleet
