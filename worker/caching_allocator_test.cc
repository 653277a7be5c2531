#include "worker/caching_allocator.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(CachedSizeClass, HugePagesThenEighthsOfAPowerOfTwo) {
  EXPECT_EQ(CachedSizeClass(kMiB), 2 * kMiB);
  EXPECT_EQ(CachedSizeClass(2 * kMiB), 2 * kMiB);
  EXPECT_EQ(CachedSizeClass(2 * kMiB + 1), 4 * kMiB);
  EXPECT_EQ(CachedSizeClass(31 * kMiB), 32 * kMiB);
  EXPECT_EQ(CachedSizeClass(33 * kMiB), 36 * kMiB);  // Steps of 4 MiB between 32 and 64 MiB.
  EXPECT_EQ(CachedSizeClass(64 * kMiB + 1), 72 * kMiB);
  for (size_t bytes = kMiB; bytes < 4096 * kMiB; bytes = bytes * 5 / 4 + 12345) {
    const size_t size_class = CachedSizeClass(bytes);
    EXPECT_GE(size_class, bytes);
    EXPECT_EQ(size_class % (2 * kMiB), 0u);
    if (bytes > 32 * kMiB) EXPECT_LE(size_class, bytes + bytes / 8 + 2 * kMiB);
  }
}

// One test: the allocator is installed for the rest of the process.
TEST(CachingCpuAllocator, ReusesFreedBlocksWithinThePeakInUse) {
  const at::Tensor before = at::ones({1 << 20});  // 4 MiB from LibTorch's default allocator.
  InstallCachingCpuAllocator();
  InstallCachingCpuAllocator();  // Again: nothing changes.
  const CachingAllocatorStats start = CachingCpuAllocatorStats();

  void* first_block = nullptr;
  {
    at::Tensor a = at::full({3 << 18}, 2.0f);  // 3 MiB: a 4 MiB block.
    first_block = a.data_ptr();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first_block) % (2 * kMiB), 0u);
    EXPECT_EQ(a.sum().item<float>(), 2.0f * (3 << 18));
    EXPECT_EQ(CachingCpuAllocatorStats().misses, start.misses + 1);
  }
  EXPECT_EQ(CachingCpuAllocatorStats().cached_bytes, start.cached_bytes + 4 * kMiB);
  {
    at::Tensor b = at::zeros({3 << 18});  // Same class: the same block, and zeroed as asked.
    EXPECT_EQ(b.data_ptr(), first_block);
    EXPECT_EQ(b.sum().item<float>(), 0.0f);  // The block held 2s before.
    EXPECT_EQ(CachingCpuAllocatorStats().hits, start.hits + 1);
  }
  {
    at::Tensor small = at::ones({1000});  // Not cached: LibTorch's own allocation.
    EXPECT_EQ(small.sum().item<float>(), 1000.0f);
  }
  EXPECT_EQ(CachingCpuAllocatorStats().hits, start.hits + 1);
  EXPECT_EQ(CachingCpuAllocatorStats().misses, start.misses + 1);

  // A bigger block than was ever in use unmaps the cached one rather than holding both.
  { at::Tensor big = at::ones({16 << 20}); }  // 64 MiB.
  const CachingAllocatorStats after = CachingCpuAllocatorStats();
  EXPECT_EQ(after.in_use_bytes, start.in_use_bytes);
  EXPECT_LE(after.peak_held_bytes, after.peak_in_use_bytes);
  EXPECT_EQ(before.sum().item<float>(), 1 << 20);  // Freed by its own deleter at the end.
}

}  // namespace
}  // namespace dpfleet::worker
