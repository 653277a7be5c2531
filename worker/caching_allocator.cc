#include "worker/caching_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace dpfleet::worker {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// `bytes` (a multiple of kHugePage) of address space with protection `prot`, starting on a
// huge-page boundary; null when the kernel refuses.
char* MapAligned(size_t bytes, int prot) {
  const size_t span = bytes + kHugePage;
  void* raw = mmap(nullptr, span, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + bytes;
  if (start + span > end) munmap(reinterpret_cast<void*>(end), start + span - end);
  return reinterpret_cast<char*>(aligned);
}

// `bytes` of zeroed memory on a huge-page boundary with transparent huge pages requested; null
// when the kernel refuses.
char* MapBlock(size_t bytes) {
  char* block = MapAligned(bytes, PROT_READ | PROT_WRITE);
  // Advice only: without it (or without THP) the block still works, in 4 KiB pages.
  if (block != nullptr) madvise(block, bytes, MADV_HUGEPAGE);
  return block;
}

// Moves the pages of [from, from + bytes) to [to, to + bytes), replacing what is mapped there;
// false when the kernel refuses (what moved stays moved). mremap moves within one mapping only,
// so a range that spans several (neighbouring blocks merged when freed) goes one huge page at a
// time; every mapping starts and ends on a huge-page boundary.
bool MovePages(char* from, char* to, size_t bytes) {
  constexpr int kFlags = MREMAP_MAYMOVE | MREMAP_FIXED;
  if (mremap(from, bytes, bytes, kFlags, to) != MAP_FAILED) return true;
  for (size_t offset = 0; offset < bytes; offset += kHugePage) {
    if (mremap(from + offset, kHugePage, kHugePage, kFlags, to + offset) == MAP_FAILED) {
      return false;
    }
  }
  return true;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) const override {
    void* data = bytes < kMinCachedBytes ? c10::alloc_cpu(bytes) : Instance().TakeBlock(bytes);
    return {data, data, &Free, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  static CachingCpuAllocator& Instance() {
    // Never destroyed: tensors may outlive static destruction.
    static auto* allocator = new CachingCpuAllocator();
    return *allocator;
  }

  void ReleaseCached() {
    absl::MutexLock lock(&mu_);
    Unmap(stats_.cached_bytes);
  }

  CachingAllocatorStats Stats() {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  static void Free(void* data) {
    if (data != nullptr && !Instance().ReturnBlock(static_cast<char*>(data))) c10::free_cpu(data);
  }

  char* TakeBlock(size_t bytes) {
    const size_t size = CachedBlockBytes(bytes);
    absl::MutexLock lock(&mu_);
    char* block = TakeFree(size);
    if (block != nullptr) {
      ++stats_.hits;
    } else if (stats_.cached_bytes >= size && (block = Assemble(size)) != nullptr) {
      ++stats_.assembled;
    } else {
      block = MapNew(size, bytes);
      ++stats_.misses;
    }
    in_use_[block] = size;
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    stats_.peak_held_bytes =
        std::max(stats_.peak_held_bytes, stats_.in_use_bytes + stats_.cached_bytes);
    return block;
  }

  // Returns false when `data` is not one of the allocator's blocks.
  bool ReturnBlock(char* data) {
    absl::MutexLock lock(&mu_);
    auto it = in_use_.find(data);
    if (it == in_use_.end()) return false;
    const size_t size = it->second;
    in_use_.erase(it);
    stats_.in_use_bytes -= size;
    AddFree(data, size);
    return true;
  }

  // The smallest free block of at least `size` bytes, cut to `size` (the rest stays free); null
  // when there is none.
  char* TakeFree(size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto fits = free_by_size_.lower_bound({size, nullptr});
    if (fits == free_by_size_.end()) return nullptr;
    const auto [block_size, block] = *fits;
    EraseFree(block, block_size);
    if (block_size > size) AddFree(block + size, block_size - size);
    return block;
  }

  // Moves free blocks, largest first, into one new block of `size` <= cached_bytes bytes. Null
  // when the kernel refuses; what was taken from the cache is then unmapped.
  char* Assemble(size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    char* region = MapAligned(size, PROT_NONE);
    if (region == nullptr) return nullptr;
    for (size_t filled = 0; filled < size;) {
      const auto [block_size, block] = *std::prev(free_by_size_.end());
      const size_t piece = std::min(block_size, size - filled);
      EraseFree(block, block_size);
      if (block_size > piece) AddFree(block + piece, block_size - piece);
      if (!MovePages(block, region + filled, piece)) {
        munmap(block, piece);
        munmap(region, size);
        return nullptr;
      }
      filled += piece;
    }
    return region;
  }

  // Maps a new block of `size` bytes for a request of `bytes`, first unmapping what of the cache
  // would take the memory held (in use and cached) beyond the most ever in use at once.
  char* MapNew(size_t size, size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t peak_in_use = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes + size);
    const size_t held = stats_.in_use_bytes + stats_.cached_bytes + size;
    if (held > peak_in_use) Unmap(held - peak_in_use);
    char* block = MapBlock(size);
    if (block == nullptr) {
      Unmap(stats_.cached_bytes);
      block = MapBlock(size);
    }
    TORCH_CHECK(block != nullptr, "caching CPU allocator: out of memory mapping ", size,
                " bytes for a request of ", bytes, " bytes");
    return block;
  }

  // Makes [block, block + size) free, merged with free neighbours.
  void AddFree(char* block, size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    stats_.cached_bytes += size;
    auto next = free_by_address_.find(block + size);
    if (next != free_by_address_.end()) {
      const size_t next_size = next->second;
      EraseFree(block + size, next_size);
      size += next_size;
      stats_.cached_bytes += next_size;
    }
    auto after = free_by_address_.lower_bound(block);
    if (after != free_by_address_.begin()) {
      const auto [previous, previous_size] = *std::prev(after);
      if (previous + previous_size == block) {
        EraseFree(previous, previous_size);
        block = previous;
        size += previous_size;
        stats_.cached_bytes += previous_size;
      }
    }
    free_by_address_.emplace(block, size);
    free_by_size_.emplace(size, block);
  }

  void EraseFree(char* block, size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    free_by_address_.erase(block);
    free_by_size_.erase({size, block});
    stats_.cached_bytes -= size;
  }

  // Unmaps free blocks, largest first, until `bytes` are unmapped or the cache is empty.
  void Unmap(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t unmapped = 0; unmapped < bytes && !free_by_size_.empty();) {
      const auto [size, block] = *std::prev(free_by_size_.end());
      EraseFree(block, size);
      munmap(block, size);
      unmapped += size;
    }
  }

  absl::Mutex mu_;
  std::unordered_map<char*, size_t> in_use_ ABSL_GUARDED_BY(mu_);  // Block -> bytes.
  // The free blocks, by start and by (bytes, start).
  std::map<char*, size_t> free_by_address_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<size_t, char*>> free_by_size_ ABSL_GUARDED_BY(mu_);
  CachingAllocatorStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

size_t CachedBlockBytes(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

void InstallCachingCpuAllocator() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    // Priority 1 outranks LibTorch's default allocator (registered at 0).
    c10::SetCPUAllocator(&CachingCpuAllocator::Instance(), /*priority=*/1);
  });
}

void ReleaseCachedCpuBlocks() { CachingCpuAllocator::Instance().ReleaseCached(); }

CachingAllocatorStats CachingCpuAllocatorStats() { return CachingCpuAllocator::Instance().Stats(); }

}  // namespace dpfleet::worker
