#ifndef DPFLEET_WORKER_CACHING_ALLOCATOR_H_
#define DPFLEET_WORKER_CACHING_ALLOCATOR_H_

// A CPU allocator for LibTorch that keeps freed large blocks for reuse. LibTorch's default CPU
// allocator hands every large tensor back to the kernel when it dies, so each step faults all of
// its activations, gradients and temporaries in again, page by page, and the kernel zeroes each
// page: on this machine that was most of a WideResNet step's time (wrn16_4 at batch 256: 3.2M
// minor faults and ~7.7 s of system time per DP step, 1.8M faults per non-private one).
//
// Blocks of at least kMinCachedBytes are rounded up to whole 2 MiB huge pages, mapped on 2 MiB
// boundaries with transparent huge pages requested (one fault per 2 MiB instead of per 4 KiB), and
// kept when freed, next to free neighbours merged into one. A request takes the smallest free block
// that fits and leaves the rest of it free. When none fits but the cache holds enough, cached
// blocks are moved together into one with mremap: their pages change address, nothing is faulted
// or zeroed. Only when the cache holds too little is a block mapped, after unmapping (largest
// first) what of the cache would take the memory held (in use plus cached) beyond the most ever in
// use at once: the cache costs no peak memory, and a step that repeats the allocations of the last
// one maps nothing. Smaller requests go to LibTorch's own allocation.

#include <cstddef>
#include <cstdint>

namespace dpfleet::worker {

inline constexpr size_t kMinCachedBytes = size_t{1} << 20;

// Returns the bytes of the block that serves a request of `bytes` >= kMinCachedBytes: whole 2 MiB
// huge pages.
size_t CachedBlockBytes(size_t bytes);

struct CachingAllocatorStats {
  int64_t hits = 0;              // Requests served by one free block, or part of one.
  int64_t assembled = 0;         // Requests served by moving several free blocks together.
  int64_t misses = 0;            // Requests that mapped a new block.
  size_t in_use_bytes = 0;       // Large blocks held by tensors.
  size_t cached_bytes = 0;       // Large blocks kept for reuse.
  size_t peak_in_use_bytes = 0;  // Most ever in use at once.
  size_t peak_held_bytes = 0;    // Most (in use + cached) ever held; never above peak_in_use_bytes.
};

// Makes the caching allocator LibTorch's CPU allocator for the rest of the process. Tensors
// allocated before keep their own deleter, so it may be called at any time; calling it again
// does nothing.
void InstallCachingCpuAllocator();

// Unmaps every cached block (a worker calls it when a job ends). Blocks in use are untouched.
void ReleaseCachedCpuBlocks();

// The counters of the installed allocator (all zero when it was never installed).
CachingAllocatorStats CachingCpuAllocatorStats();

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_CACHING_ALLOCATOR_H_
