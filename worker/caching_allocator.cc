#include "worker/caching_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace dpfleet::worker {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// `bytes` (a multiple of kHugePage) of zeroed memory starting on a huge-page boundary, with
// transparent huge pages requested; null when the kernel refuses.
void* MapBlock(size_t bytes) {
  const size_t span = bytes + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + bytes;
  if (start + span > end) munmap(reinterpret_cast<void*>(end), start + span - end);
  // Advice only: without it (or without THP) the block still works, in 4 KiB pages.
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
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
    if (data != nullptr && !Instance().ReturnBlock(data)) c10::free_cpu(data);
  }

  void* TakeBlock(size_t bytes) {
    size_t size_class = CachedSizeClass(bytes);
    absl::MutexLock lock(&mu_);
    void* block = nullptr;
    // The smallest free block that fits, if it is at most twice the size.
    auto cached = free_blocks_.lower_bound(size_class);
    while (cached != free_blocks_.end() && cached->second.empty()) ++cached;
    if (cached != free_blocks_.end() && cached->first <= 2 * size_class) {
      block = cached->second.back();
      cached->second.pop_back();
      size_class = cached->first;
      stats_.cached_bytes -= size_class;
      ++stats_.hits;
    } else {
      // Keep the memory held (in use and cached) within the most ever in use at once: unmap
      // what of the cache would go beyond it.
      const size_t peak_in_use =
          std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes + size_class);
      const size_t held = stats_.in_use_bytes + stats_.cached_bytes + size_class;
      if (held > peak_in_use) Unmap(held - peak_in_use);
      block = MapBlock(size_class);
      if (block == nullptr) {
        Unmap(stats_.cached_bytes);
        block = MapBlock(size_class);
      }
      TORCH_CHECK(block != nullptr, "caching CPU allocator: out of memory mapping ", size_class,
                  " bytes for a request of ", bytes, " bytes");
      ++stats_.misses;
    }
    in_use_[block] = size_class;
    stats_.in_use_bytes += size_class;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    stats_.peak_held_bytes =
        std::max(stats_.peak_held_bytes, stats_.in_use_bytes + stats_.cached_bytes);
    return block;
  }

  // Returns false when `data` is not one of the allocator's blocks.
  bool ReturnBlock(void* data) {
    absl::MutexLock lock(&mu_);
    auto it = in_use_.find(data);
    if (it == in_use_.end()) return false;
    const size_t size_class = it->second;
    in_use_.erase(it);
    stats_.in_use_bytes -= size_class;
    free_blocks_[size_class].push_back(data);
    stats_.cached_bytes += size_class;
    return true;
  }

  // Unmaps cached blocks, largest first, until `bytes` are unmapped or the cache is empty.
  void Unmap(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t unmapped = 0;
    while (unmapped < bytes && stats_.cached_bytes > 0) {
      auto largest = std::prev(free_blocks_.end());
      if (largest->second.empty()) {
        free_blocks_.erase(largest);
        continue;
      }
      munmap(largest->second.back(), largest->first);
      largest->second.pop_back();
      unmapped += largest->first;
      stats_.cached_bytes -= largest->first;
    }
  }

  absl::Mutex mu_;
  std::unordered_map<void*, size_t> in_use_ ABSL_GUARDED_BY(mu_);  // Block -> size class.
  std::map<size_t, std::vector<void*>> free_blocks_ ABSL_GUARDED_BY(mu_);
  CachingAllocatorStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

size_t CachedSizeClass(size_t bytes) {
  const size_t pages = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  if (pages <= 16 * kHugePage) return pages;
  const size_t power = size_t{1} << (63 - __builtin_clzll(pages));
  const size_t step = power / 8;  // A multiple of kHugePage, since power >= 32 MiB.
  return (pages + step - 1) / step * step;
}

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
