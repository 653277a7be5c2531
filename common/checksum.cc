#include "common/checksum.h"

#include <cstring>

namespace dpfleet {

void StreamChecksum::Update(const void* data, size_t length) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  total_ += length;
  while (length > 0 && pending_ > 0) {
    buffer_[pending_++] = *bytes++;
    --length;
    if (pending_ == 8) {
      uint64_t word;
      std::memcpy(&word, buffer_, 8);
      Mix(word);
      pending_ = 0;
    }
  }
  while (length >= 8) {
    uint64_t word;
    std::memcpy(&word, bytes, 8);
    Mix(word);
    bytes += 8;
    length -= 8;
  }
  while (length-- > 0) buffer_[pending_++] = *bytes++;
}

uint64_t StreamChecksum::Final() const {
  StreamChecksum copy = *this;
  uint64_t tail = 0;
  std::memcpy(&tail, copy.buffer_, copy.pending_);
  copy.Mix(tail ^ (static_cast<uint64_t>(copy.pending_) << 56));
  uint64_t h = copy.state_ ^ copy.total_;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return h;
}

void StreamChecksum::Mix(uint64_t word) {
  state_ ^= word * 0x9E3779B97F4A7C15ull;
  state_ = ((state_ << 31) | (state_ >> 33)) * 0xC2B2AE3D27D4EB4Full;
}

}  // namespace dpfleet
