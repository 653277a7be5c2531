#include "common/checksum.h"

#include <algorithm>
#include <string>

#include "gtest/gtest.h"

namespace dpfleet {
namespace {

uint64_t ChecksumOf(const std::string& bytes) {
  StreamChecksum checksum;
  checksum.Update(bytes.data(), bytes.size());
  return checksum.Final();
}

TEST(StreamChecksum, DependsOnTheBytesNotOnHowTheyWereSplit) {
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes.push_back(static_cast<char>(i * 37));
  const uint64_t whole = ChecksumOf(bytes);
  for (const size_t piece : {1, 3, 7, 8, 9, 64, 999}) {
    StreamChecksum checksum;
    for (size_t at = 0; at < bytes.size(); at += piece) {
      checksum.Update(bytes.data() + at, std::min(piece, bytes.size() - at));
    }
    EXPECT_EQ(checksum.Final(), whole) << "pieces of " << piece;
  }
}

TEST(StreamChecksum, ChangesWithEveryBitLengthAndTrailingZero) {
  std::string bytes(67, 'a');
  const uint64_t original = ChecksumOf(bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = bytes;
      flipped[i] ^= static_cast<char>(1 << bit);
      EXPECT_NE(ChecksumOf(flipped), original) << "byte " << i << " bit " << bit;
    }
  }
  EXPECT_NE(ChecksumOf(bytes.substr(0, 66)), original);
  EXPECT_NE(ChecksumOf(bytes + std::string(1, '\0')), original);
  EXPECT_NE(ChecksumOf(""), ChecksumOf(std::string(1, '\0')));
  // Final() does not consume the state.
  StreamChecksum checksum;
  checksum.Update(bytes.data(), bytes.size());
  EXPECT_EQ(checksum.Final(), checksum.Final());
}

}  // namespace
}  // namespace dpfleet
