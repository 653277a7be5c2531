#ifndef DPFLEET_WORKER_CLIPPING_H_
#define DPFLEET_WORKER_CLIPPING_H_

// Per-example gradient clipping, the core of DP-SGD (Abadi et al. 2016, Algorithm 1): each example's
// gradient g_i over all parameters is scaled to L2 norm at most C, and the scaled gradients are summed:
//   S = sum_i min(1, C / ||g_i||) g_i,
// so adding or removing one example moves S by at most C (the sensitivity the accountant assumes).

#include <ATen/ATen.h>

#include <vector>

#include "absl/status/statusor.h"
#include "models/model.h"

namespace dpfleet::worker {

struct ClippedBatch {
  double loss_sum = 0;   // Sum of the examples' cross-entropy losses.
  int64_t examples = 0;  // Examples in the batch.
};

// Adds S (above) for the batch (inputs [B, ...], labels [B] int64) to `sums`, one tensor per
// model parameter with the parameter's shape, using ONE forward and ONE backward pass (book-keeping,
// Bu et al. 2023): the backward pass yields each linear layer's per-example output gradients dy_i;
// per-example norms follow from ||dy_i x_i^T||^2 = ||dy_i||^2 ||x_i||^2 (Goodfellow 2015; ghost
// clipping, Li et al. 2021), and the clipped sum is (c * dy)^T x with c_i = min(1, C / ||g_i||).
// Errors: kInvalidArgument for clip_norm not finite and > 0, mismatched batch sizes, or `sums` of the
// wrong layout.
absl::StatusOr<ClippedBatch> AccumulateClippedGradients(models::Model& model, const at::Tensor& inputs,
                                                        const at::Tensor& labels, double clip_norm,
                                                        std::vector<at::Tensor>& sums);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_CLIPPING_H_
