#ifndef DPFLEET_MODELS_LAYERS_H_
#define DPFLEET_MODELS_LAYERS_H_

// Layers trainable with per-example gradient clipping. During a traced forward pass each layer
// records a LayerTrace holding its input activations (not its output: a hook on it hands the
// trace the output's gradient during the backward pass); from the output's gradient (the
// per-example output gradients dy_i, since the loss is a sum over examples) the trace computes the
// per-example gradient norms and the clipped gradient sum of its own parameters, without any
// per-example backward pass (book-keeping, Bu et al. 2023).
//
// Per layer the trace picks the cheaper of two exact methods:
//   ghost norms (Goodfellow 2015; Li et al. 2021): ||sum_t dy_t x_t^T||^2 = sum_{t,s}
//   (x_t.x_s)(dy_t.dy_s),
//     cost ~ B T^2 (d + p) for T output positions;
//   materialised per-example gradients G_i = dY_i^T X_i, cost ~ B T p d,
// so ghost norms win for few positions (2T^2 < p d) and materialisation for early convolutions.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/edge.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dpfleet::models {

class LayerTrace {
 public:
  virtual ~LayerTrace() = default;

  // The layer's output is not kept, only its shape and its place in the autograd graph (a null
  // function when it requires no gradient), so that no trace holds an activation the layer itself
  // does not need.
  const std::vector<int64_t>& output_sizes() const { return output_sizes_; }
  const at::TensorOptions& output_options() const { return output_options_; }
  const torch::autograd::Edge& output_edge() const { return output_edge_; }

  // Sets the function that the output's gradient hook calls, with dL/d(output), whenever a
  // backward pass goes through the layer (empty: nothing is called).
  void SetGradientVisitor(std::function<void(const at::Tensor&)> visitor) {
    *visitor_ = std::move(visitor);
  }

  // Indices (in the model's parameter list) of the parameters this layer trains.
  const std::vector<int>& parameter_indices() const { return parameter_indices_; }

  // Human-readable name, e.g. "conv1 (Conv2d 1->16, k8)".
  const std::string& name() const { return name_; }

  // Receives dL/d(output) (same shape as output) as soon as the backward pass has computed it, and
  // returns what the engine must keep for SquaredNorms and AccumulateScaled: the output gradient
  // itself, or an undefined tensor when the layer has kept its per-example parameter gradients
  // instead because they take less memory than the output gradient (book-keeping, Bu et al. 2023,
  // Sec. 3: keep whichever of the two is smaller).
  virtual at::Tensor Absorb(const at::Tensor& output_grad) { return output_grad; }

  // Returns [B / views] float64: per-example squared L2 norms of the gradients of this layer's
  // parameters, given what Absorb returned, or dL/d(output) itself when Absorb was not called. The
  // batch holds `views` consecutive rows per example (augmentation multiplicity, De et al. 2022):
  // an example's gradient is the sum of its rows' gradients, so its norm has the cross terms
  // between views (views = 1: one row per example).
  virtual at::Tensor SquaredNorms(const at::Tensor& output_grad, int64_t views) = 0;

  // Adds sum_i factors_i g_i(p) to sums[p] for each parameter p of the layer, factors [B] (one per
  // row: repeat an example's factor over its views), given what Absorb returned, or dL/d(output)
  // itself when Absorb was not called.
  virtual void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                                std::vector<at::Tensor>& sums) = 0;

 protected:
  // Registers the output's gradient hook (when it requires a gradient).
  LayerTrace(std::string name, const at::Tensor& output, std::vector<int> parameter_indices);

  // {weight} or {weight, bias}, bias < 0 meaning none.
  static std::vector<int> WeightAndBias(int weight, int bias) {
    return bias >= 0 ? std::vector<int>{weight, bias} : std::vector<int>{weight};
  }

 private:
  const std::string name_;
  const std::vector<int64_t> output_sizes_;
  const at::TensorOptions output_options_;
  torch::autograd::Edge output_edge_;
  const std::vector<int> parameter_indices_;
  // Shared with the hook, which lives in the autograd graph and may outlive the trace.
  std::shared_ptr<std::function<void(const at::Tensor&)>> visitor_ =
      std::make_shared<std::function<void(const at::Tensor&)>>();
};

struct ForwardTrace {
  std::vector<std::unique_ptr<LayerTrace>> layers;
  // Modules that mix examples (BatchNorm) and so cannot be trained privately, by name.
  std::vector<std::string> example_mixing_modules;
};

// The parameters of one model, with names, in a fixed order.
struct ParameterSet {
  std::vector<at::Tensor> tensors;
  std::vector<std::string> names;

  // Adds a trainable tensor; returns its index.
  int Add(const std::string& name, at::Tensor tensor);
};

class Linear {
 public:
  // y = x W^T + b over the last dimension of x (any leading dimensions: [B, d] or [B, T, d]).
  Linear(ParameterSet& parameters, const std::string& name, int64_t in, int64_t out, bool bias,
         at::Generator& generator);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& x,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  int weight_ = -1;
  int bias_ = -1;
};

struct Conv2dOptions {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t groups = 1;
  bool bias = true;
  // Weight standardisation (Qiao et al. 2019; De et al. 2022): each output filter is centred and
  // scaled to unit variance before the convolution.
  bool standardize_weight = false;
};

class Conv2d {
 public:
  Conv2d(ParameterSet& parameters, const std::string& name, const Conv2dOptions& options,
         at::Generator& generator);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& x,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  Conv2dOptions options_;
  int weight_ = -1;
  int bias_ = -1;
};

// GroupNorm (Wu and He 2018) with an affine; per-example statistics, so it is private. The affine
// is per channel, or shared by each run of `channels_per_affine` consecutive channels (8 for the
// fields of D4-equivariant maps, whose group channels must share it to stay equivariant).
class GroupNorm {
 public:
  GroupNorm(ParameterSet& parameters, const std::string& name, int64_t groups, int64_t channels,
            int64_t channels_per_affine = 1);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& x,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  int64_t groups_;
  int64_t channels_per_affine_;
  int weight_ = -1;
  int bias_ = -1;
};

// LayerNorm over the last dimension with an affine.
class LayerNorm {
 public:
  LayerNorm(ParameterSet& parameters, const std::string& name, int64_t features);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& x,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  int64_t features_;
  int weight_ = -1;
  int bias_ = -1;
};

// Token embedding: y[b, t] = W[ids[b, t]].
class Embedding {
 public:
  Embedding(ParameterSet& parameters, const std::string& name, int64_t vocabulary, int64_t dim,
            at::Generator& generator);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& ids,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  int weight_ = -1;
};

// BatchNorm2d with batch statistics: every output depends on every example in the batch, so the
// per-example sensitivity is unbounded. It exists so such models can be described, and is refused
// by the DP engine by name (ForwardTrace::example_mixing_modules).
class BatchNorm2d {
 public:
  BatchNorm2d(ParameterSet& parameters, const std::string& name, int64_t channels);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& x,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  int weight_ = -1;
  int bias_ = -1;
};

}  // namespace dpfleet::models

#endif  // DPFLEET_MODELS_LAYERS_H_
