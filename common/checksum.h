#ifndef DPFLEET_COMMON_CHECKSUM_H_
#define DPFLEET_COMMON_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace dpfleet {

// A fast 64-bit checksum over a byte stream, eight bytes at a time (a multiply-rotate mix in the
// style of xxHash). Detects truncation and corruption of stored files; not a cryptographic MAC
// (what crosses the network is protected by TLS). The value depends only on the bytes, not on how
// they were split between Update() calls. Frozen: feature shards and checkpoints store it.
class StreamChecksum {
 public:
  void Update(const void* data, size_t length);
  // Returns the checksum of everything passed to Update().
  uint64_t Final() const;

 private:
  void Mix(uint64_t word);

  uint64_t state_ = 0x27D4EB2F165667C5ull;
  uint64_t total_ = 0;
  unsigned char buffer_[8] = {};
  size_t pending_ = 0;
};

}  // namespace dpfleet

#endif  // DPFLEET_COMMON_CHECKSUM_H_
