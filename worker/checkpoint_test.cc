#include "worker/checkpoint.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

TrainerCheckpoint Example() {
  at::manual_seed(3);
  return {.steps_done = 12,
          .parameters = {at::randn({4, 3}), at::randn({4}), at::zeros({0, 5})},
          .optimizer_steps = 11,
          .optimizer_tensors = {at::randn({4, 3}), at::randn({4})},
          .average = {at::randn({4, 3}), at::randn({4}), at::zeros({0, 5})}};
}

void ExpectSame(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << i;
}

TEST(Checkpoint, RoundTripsBitForBit) {
  const TrainerCheckpoint original = Example();
  const absl::StatusOr<TrainerCheckpoint> decoded = DecodeCheckpoint(EncodeCheckpoint(original));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->steps_done, 12);
  EXPECT_EQ(decoded->optimizer_steps, 11);
  ExpectSame(decoded->parameters, original.parameters);
  ExpectSame(decoded->optimizer_tensors, original.optimizer_tensors);
  ExpectSame(decoded->average, original.average);
  // Strided and double tensors are stored as contiguous float32.
  const at::Tensor strided = at::randn({3, 4}, at::kDouble).t();
  const auto converted = DecodeCheckpoint(EncodeCheckpoint({.parameters = {strided}}));
  ASSERT_TRUE(converted.ok());
  EXPECT_TRUE(at::equal(converted->parameters[0], strided.to(at::kFloat)));
}

TEST(Checkpoint, RefusesEveryTruncationAndEveryFlippedByte) {
  const std::string bytes = EncodeCheckpoint(Example());
  for (size_t length = 0; length < bytes.size(); length += 7) {
    EXPECT_EQ(DecodeCheckpoint(bytes.substr(0, length)).status().code(),
              absl::StatusCode::kDataLoss)
        << length;
  }
  for (size_t i = 0; i < bytes.size(); i += 5) {
    std::string flipped = bytes;
    flipped[i] ^= 0x04;
    EXPECT_EQ(DecodeCheckpoint(flipped).status().code(), absl::StatusCode::kDataLoss) << i;
  }
  EXPECT_NE(DecodeCheckpoint(bytes + "x").status().message().find("checksum"), std::string::npos);
  EXPECT_NE(DecodeCheckpoint("PK\x03\x04 a LibTorch archive").status().message().find("DPFCKPT"),
            std::string::npos);
}

// The body of a checkpoint of one parameter, with its dimension count and sizes as given; the
// header is 40 bytes (magic, version, three counts, two step counts).
std::string OneTensorBody(uint32_t dimensions, const std::vector<int64_t>& sizes) {
  std::string bytes = EncodeCheckpoint({.parameters = {at::zeros({1})}});
  bytes.resize(40);
  bytes.append(reinterpret_cast<const char*>(&dimensions), sizeof(dimensions));
  for (const int64_t size : sizes) {
    bytes.append(reinterpret_cast<const char*>(&size), sizeof(size));
  }
  return bytes + std::string(64, '\0');
}

TEST(Checkpoint, BoundsForgedSizesByTheBytesGiven) {
  // Sealed correctly (as a forger who knows the format would), so only the size checks stand
  // between the forgery and an allocation.
  EXPECT_TRUE(DecodeCheckpoint(SealCheckpoint(OneTensorBody(2, {4, 4}))).ok());
  const struct {
    uint32_t dimensions;
    std::vector<int64_t> sizes;
    const char* refusal;
  } forgeries[] = {
      {2, {int64_t{1} << 62, int64_t{1} << 62}, "truncated"},  // Overflows 64 bits.
      {1, {17}, "truncated"},                                  // 68 bytes, 64 given.
      {2, {-4, -4}, "negative size"},
      {9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, "9 dimensions"},
      {2, {4, 2}, "bytes after"},
  };
  for (const auto& forged : forgeries) {
    const absl::Status status =
        DecodeCheckpoint(SealCheckpoint(OneTensorBody(forged.dimensions, forged.sizes))).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(status.message().find(forged.refusal), std::string::npos) << status;
  }
}

}  // namespace
}  // namespace dpfleet::worker
