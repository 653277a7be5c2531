#ifndef DPFLEET_MODELS_MODEL_H_
#define DPFLEET_MODELS_MODEL_H_

// Models trainable with per-example gradient clipping, built from the layers of layers.h. A traced
// forward pass records every trainable layer, so one forward and one backward pass suffice for a DP
// step (worker/clipping.h).

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/layers.h"

namespace dpfleet::models {

struct ModelShape {
  std::vector<int64_t> input_shape;  // Shape of one example, e.g. {1, 28, 28}.
  int64_t num_classes = 0;
};

// Not thread-safe.
class Model {
 public:
  virtual ~Model() = default;

  // Returns logits [B, num_classes] for `inputs`, which are Preprocess() of examples
  // [B, input_shape...]. When `trace` is not null, records every trainable layer (and the logits
  // are part of the autograd graph).
  virtual at::Tensor Forward(const at::Tensor& inputs, ForwardTrace* trace) = 0;

  // Returns the model's fixed front applied to examples [B, input_shape...]: a transform with no
  // trainable parameters that reads nothing but each example (e.g. a scattering transform), or
  // the examples unchanged. Since it never changes, a worker may compute it once per example and
  // cache it; training on the cache is training on the examples.
  virtual at::Tensor Preprocess(const at::Tensor& examples) const { return examples; }
  // True when Preprocess() is not the identity.
  virtual bool has_fixed_front() const { return false; }

  // The trainable parameters in a fixed order, which is also the layout of gradient buffers.
  std::vector<at::Tensor>& parameters() { return parameters_.tensors; }
  const std::vector<at::Tensor>& parameters() const { return parameters_.tensors; }
  const std::vector<std::string>& parameter_names() const { return parameters_.names; }

 protected:
  ParameterSet parameters_;
};

// Returns a freshly initialised model: "linear", "mlp", "cnn_tb", "wrn16_4", "eq_cnn",
// "eq_resnet9", "scatter_linear" or "scatter_cnn" (models/model_names.h). Initialisation depends
// only on (name, shape, seed), so every worker given the same public seed starts from bit-identical
// parameters. Errors: kInvalidArgument for an unknown name (listing the known ones) or a shape the
// model cannot take.
absl::StatusOr<std::unique_ptr<Model>> CreateModel(const std::string& name, const ModelShape& shape,
                                                   uint64_t seed);

// Returns the 64-bit FNV-1a hash of the raw bytes of `tensors`, in order. Equal fingerprints mean
// (up to a 2^-64 chance) bit-identical parameters.
uint64_t Fingerprint(const std::vector<at::Tensor>& tensors);

// Writes the model's parameters (names, shapes, values) to `path` through a temporary file and a
// rename, so a crash never leaves a half-written checkpoint under that name. Errors: kInternal.
absl::Status SaveParameters(const Model& model, const std::string& path);

// Reads parameters written by SaveParameters into `model`. Errors: kNotFound for a missing file;
// kDataLoss for a corrupt one; kFailedPrecondition when names or shapes do not match the model's.
absl::Status LoadParameters(const std::string& path, Model& model);

}  // namespace dpfleet::models

#endif  // DPFLEET_MODELS_MODEL_H_
