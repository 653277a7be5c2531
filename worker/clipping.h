#ifndef DPFLEET_WORKER_CLIPPING_H_
#define DPFLEET_WORKER_CLIPPING_H_

// Per-example gradient clipping, the core of DP-SGD (Abadi et al. 2016, Algorithm 1): each
// example's gradient g_i is scaled to L2 norm at most C and the scaled gradients are summed,
//   S = sum_i min(1, C / ||g_i||) g_i,
// so adding or removing one example moves S by at most C (the sensitivity the accountant assumes).
// The per-example norms and S come from ONE forward and ONE backward pass: every layer's trace
// (models/layers.h) turns its per-example output gradients into its parameters' norms and sums.

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "models/model.h"

namespace dpfleet::worker {

enum class ClippingMode {
  // One norm over all parameters: c_i = min(1, C / ||g_i||).
  kFlat,
  // Each of the L traced layers clipped on its own to C / sqrt(L), so the whole gradient still has
  // norm at most C (McMahan et al. 2018, per-layer clipping).
  kPerLayer,
};

enum class Loss {
  kSoftmaxCrossEntropy,  // One label per example.
  kSigmoidCrossEntropy,  // One binary cross-entropy per class against the one-hot label (Mehta et
                         // al. 2022 finetune linear heads with it).
};

// Returns the per-example losses of `logits` [B, K] against `labels` [B], summed over the batch (so
// the gradient w.r.t. each example's logits is that example's own).
at::Tensor SummedLoss(const at::Tensor& logits, const at::Tensor& labels, Loss loss);

// The relative margin the clip factors keep below the clip norm for gradients of `dtype`: they aim
// at C (1 - margin), so that an example's realised contribution stays at most C although its norm
// and its scaled gradient are computed with rounding (float32 Gram matrices and products of norms:
// up to 1.1e-5 relative was measured without a margin). 1e-4 for float32 (a 0.01% smaller clip
// norm), 1e-10 for float64. Tested over random and extreme inputs with no tolerance above C.
double ClipMargin(at::ScalarType dtype);

struct ClippingOptions {
  double clip_norm = 1.0;  // C.
  ClippingMode mode = ClippingMode::kFlat;
  // Automatic clipping (Bu et al. 2022): scale every gradient to C / (||g_i|| + stability) instead
  // of min(1, C / ||g_i||); the norm still stays below C.
  bool automatic = false;
  double automatic_stability = 0.01;
  // The per-example loss whose gradients are clipped.
  Loss loss = Loss::kSoftmaxCrossEntropy;
  // Ghost clipping (Li et al. 2021) instead of book-keeping: a first backward pass takes each
  // layer's per-example norms from its output gradient as it flows by and keeps none of them; a
  // second, ordinary backward of the loss with each example weighted by its clip factor yields
  // the clipped sum. Peak memory stays near non-private training, for one more backward pass.
  bool low_memory = false;
  // When > 0, also sum the examples' losses each clipped to [0, loss_clip]: a sum of sensitivity
  // loss_clip, which can be released with noise (TrainerOptions::loss_noise_multiplier).
  double loss_clip = 0;
  // Augmentation multiplicity (De et al. 2022, Sec. 3.1): the inputs hold this many consecutive
  // views (augmentations) of each example; an example's gradient and loss are the means over its
  // views, and that mean is clipped as one gradient, so the sum's sensitivity stays C.
  int64_t views_per_example = 1;
};

struct ClippedBatch {
  // Over the examples that contributed: the sum of their cross-entropy losses, and of
  // min(loss, loss_clip) when loss_clip > 0.
  double loss_sum = 0;
  double clipped_loss_sum = 0;
  int64_t examples = 0;             // Examples in the batch.
  int64_t non_finite_examples = 0;  // Of those, the ones left out (below); not private.
};

// Adds S (above) for the batch (inputs [B V, ...] with V = views_per_example consecutive views
// of each example, labels [B] int64) to `sums`, one tensor per model parameter with the
// parameter's shape. An example with a non-finite input value, gradient norm or
// loss (an inf or a NaN: e.g. a float16 feature that overflowed) contributes exactly nothing, in
// every clipping mode (with views: an example any of whose views has one): it has no norm to clip,
// and 0 * inf = NaN would otherwise carry it into
// the whole sum, telling neighbouring datasets apart with certainty. Errors: kInvalidArgument for a
// clip norm not finite and > 0, mismatched batch sizes or `sums` of the wrong layout;
// kFailedPrecondition naming a module that mixes examples (BatchNorm), a parameter no traced layer
// trains, or one trained by two layers. `on_accumulated`, when set, is called with a layer's
// parameter indices as soon as that layer's sums are final, layer by layer, so that the caller can
// start reducing them.
absl::StatusOr<ClippedBatch> AccumulateClippedGradients(
    models::Model& model, const at::Tensor& inputs, const at::Tensor& labels,
    const ClippingOptions& options, std::vector<at::Tensor>& sums,
    const std::function<void(const std::vector<int>&)>& on_accumulated = nullptr);

// Checks, with one traced forward pass on `example_batch`, that the engine can train `model`
// privately: no module mixes examples and every parameter belongs to exactly one traced layer.
// Errors: kFailedPrecondition naming the module or parameter.
absl::Status CheckPrivatelyTrainable(models::Model& model, const at::Tensor& example_batch);

}  // namespace dpfleet::worker

#endif  // DPFLEET_WORKER_CLIPPING_H_
