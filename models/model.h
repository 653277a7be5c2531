#ifndef DPFLEET_MODELS_MODEL_H_
#define DPFLEET_MODELS_MODEL_H_

// Models trainable with per-sample gradient clipping. A forward pass can record, for every trainable
// layer, the activations that per-sample gradient norms and clipped sums are computed from
// (book-keeping, Bu et al. 2023), so one forward and one backward pass suffice for a DP step.

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dpfleet::models {

// One fully connected layer y = x W^T + b as seen in a forward pass over a batch.
struct LinearLayerTrace {
  at::Tensor input;   // [B, in], no gradient.
  at::Tensor output;  // [B, out], in the autograd graph: dL/d(output) gives per-example output grads.
  int weight_index;   // Index of W [out, in] in Model::parameters().
  int bias_index;     // Index of b [out] in Model::parameters(), or -1 without bias.
};

struct ForwardTrace {
  std::vector<LinearLayerTrace> linear_layers;
};

struct ModelShape {
  std::vector<int64_t> input_shape;  // Shape of one example, e.g. {1, 28, 28}.
  int64_t num_classes = 0;
};

// Not thread-safe.
class Model {
 public:
  virtual ~Model() = default;

  // Returns logits [B, num_classes] for `inputs` [B, input_shape...]. When `trace` is not null, records
  // every trainable layer (and the returned logits are part of the autograd graph).
  virtual at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) = 0;

  // The trainable parameters in a fixed order, which is also the layout of gradient buffers.
  std::vector<at::Tensor>& parameters() { return parameters_; }
  const std::vector<at::Tensor>& parameters() const { return parameters_; }

 protected:
  std::vector<at::Tensor> parameters_;
};

// Returns a freshly initialised model. Initialisation depends only on (name, shape, seed), so every
// worker given the same public seed starts from bit-identical parameters.
// Errors: kInvalidArgument for an unknown name (listing the known ones) or an empty shape.
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const std::string& name, const ModelShape& shape,
                                                   uint64_t seed);

// Returns the 64-bit FNV-1a hash of the raw bytes of `tensors`, in order. Equal fingerprints mean (up
// to a 2^-64 chance) bit-identical parameters.
uint64_t Fingerprint(const std::vector<at::Tensor>& tensors);

}  // namespace dpfleet::models

#endif  // DPFLEET_MODELS_MODEL_H_
