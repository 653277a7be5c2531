#ifndef DPFLEET_MODELS_BATCHED_MATMUL_H_
#define DPFLEET_MODELS_BATCHED_MATMUL_H_

// Batches of small matrix products, one per example, as the per-example gradients and Gram
// matrices of the clipping engine need them. Internal to models/.

#include <ATen/ATen.h>

namespace dpfleet::models::internal {

// Returns a [n, m, p] (contiguous) with c[i] = a[i] b[i], for a [n, m, k] and b [n, k, p] of one
// floating type (float or double) on the CPU, in any strides (transposed views cost no copy).
//
// Same result as at::bmm, which in LibTorch 1.13 runs a batch of matrices this size one by one
// through the dispatcher (select, resolve_conj and addmm per matrix) and on one thread; this calls
// the system BLAS's gemm on raw pointers, the examples split over the intra-op threads.
at::Tensor BatchedMatmul(const at::Tensor& a, const at::Tensor& b);

}  // namespace dpfleet::models::internal

#endif  // DPFLEET_MODELS_BATCHED_MATMUL_H_
