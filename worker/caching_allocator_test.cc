#include "worker/caching_allocator.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr int64_t kFloatsPerMiB = kMiB / sizeof(float);

TEST(CachedBlockBytes, WholeHugePages) {
  EXPECT_EQ(CachedBlockBytes(kMiB), 2 * kMiB);
  EXPECT_EQ(CachedBlockBytes(2 * kMiB), 2 * kMiB);
  EXPECT_EQ(CachedBlockBytes(2 * kMiB + 1), 4 * kMiB);
  EXPECT_EQ(CachedBlockBytes(33 * kMiB), 34 * kMiB);
}

char* Data(const at::Tensor& t) { return static_cast<char*>(t.data_ptr()); }

// One test: the allocator is installed for the rest of the process.
TEST(CachingCpuAllocator, ReusesSplitsMergesAndMovesFreedBlocksWithinThePeakInUse) {
  const at::Tensor before = at::ones({kFloatsPerMiB});  // From LibTorch's default allocator.
  InstallCachingCpuAllocator();
  InstallCachingCpuAllocator();  // Again: nothing changes.
  const CachingAllocatorStats start = CachingCpuAllocatorStats();

  char* first_block = nullptr;
  {
    at::Tensor a = at::full({3 * kFloatsPerMiB}, 2.0f);  // 3 MiB: a 4 MiB block.
    first_block = Data(a);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first_block) % (2 * kMiB), 0u);
    EXPECT_EQ(a.sum().item<float>(), 2.0f * 3 * kFloatsPerMiB);
    EXPECT_EQ(CachingCpuAllocatorStats().misses, start.misses + 1);
  }
  EXPECT_EQ(CachingCpuAllocatorStats().cached_bytes, start.cached_bytes + 4 * kMiB);
  {
    at::Tensor b = at::zeros({3 * kFloatsPerMiB});  // The same block, and zeroed as asked.
    EXPECT_EQ(Data(b), first_block);
    EXPECT_EQ(b.sum().item<float>(), 0.0f);  // The block held 2s before.
    EXPECT_EQ(CachingCpuAllocatorStats().hits, start.hits + 1);
  }
  {
    at::Tensor small = at::ones({1000});  // Not cached: LibTorch's own allocation.
    EXPECT_EQ(small.sum().item<float>(), 1000.0f);
  }
  {  // Two 2 MiB blocks cut from the 4 MiB one; once both are freed, it is whole again.
    at::Tensor low = at::ones({2 * kFloatsPerMiB});
    at::Tensor high = at::ones({2 * kFloatsPerMiB});
    EXPECT_EQ(Data(low), first_block);
    EXPECT_EQ(Data(high), first_block + 2 * kMiB);
  }
  {
    at::Tensor whole = at::ones({4 * kFloatsPerMiB});
    EXPECT_EQ(Data(whole), first_block);
  }
  EXPECT_EQ(CachingCpuAllocatorStats().hits, start.hits + 4);
  EXPECT_EQ(CachingCpuAllocatorStats().misses, start.misses + 1);

  // 12 MiB, more than the cache holds: the cached block is unmapped, not kept beside the new one.
  char* base = nullptr;
  { base = Data(at::empty({12 * kFloatsPerMiB})); }
  EXPECT_EQ(CachingCpuAllocatorStats().misses, start.misses + 2);
  EXPECT_EQ(CachingCpuAllocatorStats().cached_bytes, start.cached_bytes + 12 * kMiB);
  {
    // Cut into three and free the outer two: no free block holds 8 MiB, but the cache does. The
    // 8 MiB block is made of their pages, moved, with what they held.
    at::Tensor outer_low = at::full({4 * kFloatsPerMiB}, 1.0f);
    at::Tensor middle = at::full({4 * kFloatsPerMiB}, 5.0f);
    at::Tensor outer_high = at::full({4 * kFloatsPerMiB}, 3.0f);
    EXPECT_EQ(Data(outer_high), base + 8 * kMiB);
    outer_low.reset();
    outer_high.reset();
    const at::Tensor moved = at::empty({8 * kFloatsPerMiB});
    EXPECT_EQ(CachingCpuAllocatorStats().assembled, start.assembled + 1);
    EXPECT_EQ(CachingCpuAllocatorStats().misses, start.misses + 2);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(Data(moved)) % (2 * kMiB), 0u);
    const at::Tensor halves = moved.view({2, -1});
    EXPECT_TRUE(halves.amin(1).equal(halves.amax(1)));                // Each half uniform.
    EXPECT_EQ(halves.sum().item<float>(), 4.0f * 4 * kFloatsPerMiB);  // One of 1s, one of 3s.
    EXPECT_EQ(middle.sum().item<float>(), 5.0f * 4 * kFloatsPerMiB);  // Untouched.
    at::Tensor writable = at::ones({8 * kFloatsPerMiB});  // A fresh block beside, still usable.
    EXPECT_EQ(writable.sum().item<float>(), 8.0f * kFloatsPerMiB);
  }

  const CachingAllocatorStats after = CachingCpuAllocatorStats();
  EXPECT_EQ(after.in_use_bytes, start.in_use_bytes);
  EXPECT_LE(after.peak_held_bytes, after.peak_in_use_bytes);
  ReleaseCachedCpuBlocks();
  EXPECT_EQ(CachingCpuAllocatorStats().cached_bytes, 0u);
  EXPECT_EQ(before.sum().item<float>(), kFloatsPerMiB);  // Freed by its own deleter at the end.
}

}  // namespace
}  // namespace dpfleet::worker
