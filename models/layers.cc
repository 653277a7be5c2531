#include "models/layers.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace dpfleet::models {
namespace {

// PyTorch's default initialisation of Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
at::Tensor UniformInit(at::IntArrayRef shape, int64_t fan_in, at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::kFloat).uniform_(-bound, bound, generator);
}

at::Tensor SquaredNormPerExample(const at::Tensor& per_example) {
  return per_example.to(at::kDouble).pow(2).flatten(1).sum(1);
}

// Per-example gradients of one weight (+ bias), materialised; the simplest trace, used by the affine
// norms whose gradients are only [B, C].
class MaterializedTrace : public LayerTrace {
 public:
  const at::Tensor& output() const override { return output_; }
  const std::string& name() const override { return name_; }

  at::Tensor SquaredNorms(const at::Tensor& output_grad) override {
    Materialize(output_grad);
    at::Tensor squared = at::zeros({output_.size(0)}, output_.options().dtype(at::kDouble));
    for (const at::Tensor& g : per_example_) squared += SquaredNormPerExample(g);
    return squared;
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    Materialize(output_grad);
    const std::vector<int> indices = parameter_indices();
    for (size_t k = 0; k < indices.size(); ++k) {
      const at::Tensor& g = per_example_[k];
      std::vector<int64_t> shape(g.dim(), 1);
      shape[0] = g.size(0);
      sums[indices[k]].add_((g * factors.to(g.scalar_type()).view(shape)).sum(0).view_as(sums[indices[k]]));
    }
  }

 protected:
  MaterializedTrace(std::string name, at::Tensor output) : name_(std::move(name)), output_(std::move(output)) {}
  // Fills per_example_ (one [B, ...] tensor per parameter index) from dL/d(output).
  virtual void ComputePerExample(const at::Tensor& output_grad) = 0;
  std::vector<at::Tensor> per_example_;

 private:
  void Materialize(const at::Tensor& output_grad) {
    if (per_example_.empty()) ComputePerExample(output_grad);
  }

  std::string name_;
  at::Tensor output_;
};

class LinearTrace final : public LayerTrace {
 public:
  LinearTrace(std::string name, at::Tensor input, at::Tensor output, int weight, int bias)
      : name_(std::move(name)), input_(std::move(input)), output_(std::move(output)),
        weight_(weight), bias_(bias) {}

  const at::Tensor& output() const override { return output_; }
  const std::string& name() const override { return name_; }
  std::vector<int> parameter_indices() const override {
    return bias_ >= 0 ? std::vector<int>{weight_, bias_} : std::vector<int>{weight_};
  }

  at::Tensor SquaredNorms(const at::Tensor& output_grad) override {
    const int64_t b = input_.size(0);
    const at::Tensor x = input_.reshape({b, -1, input_.size(-1)}).to(at::kDouble);    // [B, T, d]
    const at::Tensor dy = output_grad.reshape({b, -1, output_grad.size(-1)}).to(at::kDouble);  // [B, T, p]
    const int64_t t = x.size(1), d = x.size(2), p = dy.size(2);
    at::Tensor squared;
    if (t == 1) {
      squared = x.pow(2).sum({1, 2}) * dy.pow(2).sum({1, 2});
    } else if (2 * t * t < p * d) {  // Ghost norm.
      squared = (x.bmm(x.transpose(1, 2)) * dy.bmm(dy.transpose(1, 2))).sum({1, 2});
    } else {  // Materialised per-example weight gradients [B, p, d].
      squared = dy.transpose(1, 2).bmm(x).pow(2).sum({1, 2});
    }
    if (bias_ >= 0) squared += dy.sum(1).pow(2).sum(1);
    return squared;
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    const int64_t b = input_.size(0);
    const at::Tensor x = input_.reshape({b, -1, input_.size(-1)});
    const at::Tensor scaled =
        output_grad.reshape({b, -1, output_grad.size(-1)}) * factors.to(output_grad.scalar_type()).view({b, 1, 1});
    // sum_i c_i dY_i^T X_i as one product over all (example, position) rows.
    sums[weight_].add_(scaled.reshape({-1, scaled.size(2)}).t().mm(x.reshape({-1, x.size(2)})));
    if (bias_ >= 0) sums[bias_].add_(scaled.sum(at::IntArrayRef{0, 1}));
  }

 private:
  std::string name_;
  at::Tensor input_;
  at::Tensor output_;
  int weight_;
  int bias_;
};

class Conv2dTrace final : public LayerTrace {
 public:
  Conv2dTrace(std::string name, const Conv2dOptions& options, at::Tensor input, at::Tensor output,
              at::Tensor standardized_weight, at::Tensor weight_scale, int weight, int bias)
      : name_(std::move(name)), options_(options), input_(std::move(input)), output_(std::move(output)),
        standardized_weight_(std::move(standardized_weight)), weight_scale_(std::move(weight_scale)),
        weight_(weight), bias_(bias) {}

  const at::Tensor& output() const override { return output_; }
  const std::string& name() const override { return name_; }
  std::vector<int> parameter_indices() const override {
    return bias_ >= 0 ? std::vector<int>{weight_, bias_} : std::vector<int>{weight_};
  }

  at::Tensor SquaredNorms(const at::Tensor& output_grad) override {
    Prepare(output_grad);
    at::Tensor squared;
    if (use_ghost_) {
      // sum over groups of sum_{l,m} (x_l.x_m)(dy_l.dy_m); x: [B, g, ck, L], dy: [B, g, o, L].
      const at::Tensor x = unfolded_.to(at::kDouble).flatten(0, 1);
      const at::Tensor dy = grad_.to(at::kDouble).flatten(0, 1);
      squared = (x.transpose(1, 2).bmm(x) * dy.transpose(1, 2).bmm(dy))
                    .sum({1, 2})
                    .view({input_.size(0), options_.groups})
                    .sum(1);
    } else {
      squared = SquaredNormPerExample(PerExampleWeightGradients());
    }
    if (bias_ >= 0) squared += SquaredNormPerExample(grad_.sum(-1).flatten(1));
    return squared;
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    Prepare(output_grad);
    const int64_t b = input_.size(0);
    const at::Tensor c = factors.to(grad_.scalar_type());
    if (use_ghost_) {
      // sum_i c_i dY_i X_i^T per group: [g, o, B L] x [g, B L, ck].
      const at::Tensor dy = (grad_ * c.view({b, 1, 1, 1})).permute({1, 2, 0, 3}).flatten(2);
      const at::Tensor x = unfolded_.permute({1, 0, 3, 2}).flatten(1, 2);
      sums[weight_].add_(dy.bmm(x).view_as(sums[weight_]));
    } else {
      const at::Tensor g = PerExampleWeightGradients();  // [B, O, n]
      sums[weight_].add_((g * c.view({b, 1, 1})).sum(0).view_as(sums[weight_]));
    }
    if (bias_ >= 0) sums[bias_].add_((grad_.sum(-1).flatten(1) * c.view({b, 1})).sum(0));
  }

 private:
  // Unfolds the input once (im2col) and reshapes dL/d(output) by group; chooses the method by cost.
  void Prepare(const at::Tensor& output_grad) {
    if (unfolded_.defined()) return;
    const int64_t b = input_.size(0), g = options_.groups;
    const at::Tensor unfolded = at::im2col(input_, {options_.kernel, options_.kernel}, {1, 1},
                                           {options_.padding, options_.padding},
                                           {options_.stride, options_.stride});  // [B, C k k, L]
    const int64_t positions = unfolded.size(2);
    unfolded_ = unfolded.view({b, g, -1, positions});
    grad_ = output_grad.reshape({b, g, options_.out_channels / g, positions});
    const double ck = static_cast<double>(unfolded_.size(2));
    const double o = static_cast<double>(grad_.size(2));
    const double l = static_cast<double>(positions);
    // Weight standardisation needs the per-example gradient to pull it back through the
    // standardisation, so it always materialises.
    use_ghost_ = !options_.standardize_weight && l * l * (o + ck) < o * ck * l;
  }

  // [B, O, (C/g) k k]: per-example gradients of the weight parameter.
  at::Tensor PerExampleWeightGradients() {
    if (per_example_.defined()) return per_example_;
    const int64_t b = input_.size(0);
    at::Tensor g = grad_.matmul(unfolded_.transpose(2, 3)).view({b, options_.out_channels, -1});
    if (options_.standardize_weight) {
      // W_hat = (W - mean) / s per output filter; the vector-Jacobian product of that map:
      // dW = (dW_hat - mean(dW_hat) - W_hat mean(dW_hat * W_hat)) / s.
      const at::Tensor w_hat = standardized_weight_.view({1, options_.out_channels, -1}).to(g.scalar_type());
      g = (g - g.mean(-1, true) - w_hat * (g * w_hat).mean(-1, true)) /
          weight_scale_.view({1, options_.out_channels, 1}).to(g.scalar_type());
    }
    per_example_ = g;
    return per_example_;
  }

  std::string name_;
  Conv2dOptions options_;
  at::Tensor input_;
  at::Tensor output_;
  at::Tensor standardized_weight_;
  at::Tensor weight_scale_;
  int weight_;
  int bias_;
  at::Tensor unfolded_;
  at::Tensor grad_;
  at::Tensor per_example_;
  bool use_ghost_ = false;
};

// y = x_hat * gamma + beta per channel: per-example gradients are sums of dy * x_hat and of dy over
// every dimension but the batch and the channel.
class AffineTrace final : public MaterializedTrace {
 public:
  AffineTrace(std::string name, at::Tensor normalized, at::Tensor output, int64_t channel_dim,
              int weight, int bias)
      : MaterializedTrace(std::move(name), std::move(output)), normalized_(std::move(normalized)),
        channel_dim_(channel_dim), weight_(weight), bias_(bias) {}

  std::vector<int> parameter_indices() const override { return {weight_, bias_}; }

 private:
  void ComputePerExample(const at::Tensor& output_grad) override {
    std::vector<int64_t> reduce;
    for (int64_t d = 1; d < output_grad.dim(); ++d) {
      if (d != channel_dim_) reduce.push_back(d);
    }
    if (reduce.empty()) {
      per_example_ = {output_grad * normalized_, output_grad};
    } else {
      per_example_ = {(output_grad * normalized_).sum(reduce), output_grad.sum(reduce)};
    }
  }

  at::Tensor normalized_;
  int64_t channel_dim_;
  int weight_;
  int bias_;
};

class EmbeddingTrace final : public LayerTrace {
 public:
  EmbeddingTrace(std::string name, at::Tensor ids, at::Tensor output, int weight)
      : name_(std::move(name)), ids_(std::move(ids)), output_(std::move(output)), weight_(weight) {}

  const at::Tensor& output() const override { return output_; }
  const std::string& name() const override { return name_; }
  std::vector<int> parameter_indices() const override { return {weight_}; }

  // Rows of the same token add up: ||g_i||^2 = sum_{t,s} [id_t == id_s] (dy_t . dy_s).
  at::Tensor SquaredNorms(const at::Tensor& output_grad) override {
    const int64_t b = ids_.size(0);
    const at::Tensor ids = ids_.reshape({b, -1});
    const at::Tensor dy = output_grad.reshape({b, ids.size(1), -1}).to(at::kDouble);
    const at::Tensor same = ids.unsqueeze(2).eq(ids.unsqueeze(1)).to(at::kDouble);
    return (same * dy.bmm(dy.transpose(1, 2))).sum({1, 2});
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    const int64_t b = ids_.size(0);
    const at::Tensor dy = output_grad.reshape({b, -1, output_grad.size(-1)}) *
                          factors.to(output_grad.scalar_type()).view({b, 1, 1});
    sums[weight_].index_add_(0, ids_.reshape({-1}), dy.reshape({-1, dy.size(2)}));
  }

 private:
  std::string name_;
  at::Tensor ids_;
  at::Tensor output_;
  int weight_;
};

}  // namespace

int ParameterSet::Add(const std::string& name, at::Tensor tensor) {
  tensors.push_back(tensor.set_requires_grad(true));
  names.push_back(name);
  return static_cast<int>(tensors.size()) - 1;
}

Linear::Linear(ParameterSet& parameters, const std::string& name, int64_t in, int64_t out, bool bias,
               at::Generator& generator)
    : name_(absl::StrCat(name, " (Linear ", in, "->", out, ")")) {
  weight_ = parameters.Add(name + ".weight", UniformInit({out, in}, in, generator));
  if (bias) bias_ = parameters.Add(name + ".bias", UniformInit({out}, in, generator));
}

at::Tensor Linear::Forward(const ParameterSet& parameters, const at::Tensor& x, ForwardTrace* trace) const {
  const at::Tensor y = at::linear(x, parameters.tensors[weight_],
                                  bias_ >= 0 ? parameters.tensors[bias_] : at::Tensor());
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<LinearTrace>(name_, x.detach(), y, weight_, bias_));
  }
  return y;
}

Conv2d::Conv2d(ParameterSet& parameters, const std::string& name, const Conv2dOptions& options,
               at::Generator& generator)
    : name_(absl::StrCat(name, " (Conv2d ", options.in_channels, "->", options.out_channels, ", k",
                         options.kernel, options.standardize_weight ? ", standardized" : "", ")")),
      options_(options) {
  const int64_t fan_in = options.in_channels / options.groups * options.kernel * options.kernel;
  weight_ = parameters.Add(
      name + ".weight",
      UniformInit({options.out_channels, options.in_channels / options.groups, options.kernel, options.kernel},
                  fan_in, generator));
  if (options.bias) bias_ = parameters.Add(name + ".bias", UniformInit({options.out_channels}, fan_in, generator));
}

at::Tensor Conv2d::Forward(const ParameterSet& parameters, const at::Tensor& x, ForwardTrace* trace) const {
  at::Tensor weight = parameters.tensors[weight_];
  at::Tensor standardized, scale;
  if (options_.standardize_weight) {
    const at::Tensor flat = weight.view({options_.out_channels, -1});
    const at::Tensor mean = flat.mean(1, true);
    scale = (flat.var(1, /*unbiased=*/false, true) + 1e-5).sqrt();
    standardized = (flat - mean) / scale;
    weight = standardized.view_as(weight);
  }
  const at::Tensor y = at::conv2d(x, weight, bias_ >= 0 ? parameters.tensors[bias_] : at::Tensor(),
                                  {options_.stride, options_.stride}, {options_.padding, options_.padding},
                                  {1, 1}, options_.groups);
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<Conv2dTrace>(
        name_, options_, x.detach(), y, standardized.defined() ? standardized.detach() : at::Tensor(),
        scale.defined() ? scale.detach() : at::Tensor(), weight_, bias_));
  }
  return y;
}

GroupNorm::GroupNorm(ParameterSet& parameters, const std::string& name, int64_t groups, int64_t channels)
    : name_(absl::StrCat(name, " (GroupNorm ", groups, "x", channels / groups, ")")), groups_(groups) {
  weight_ = parameters.Add(name + ".weight", at::ones({channels}));
  bias_ = parameters.Add(name + ".bias", at::zeros({channels}));
}

at::Tensor GroupNorm::Forward(const ParameterSet& parameters, const at::Tensor& x, ForwardTrace* trace) const {
  const at::Tensor normalized = at::group_norm(x, groups_, {}, {}, 1e-5);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  const at::Tensor y = normalized * parameters.tensors[weight_].view(shape) + parameters.tensors[bias_].view(shape);
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<AffineTrace>(name_, normalized.detach(), y, 1, weight_, bias_));
  }
  return y;
}

LayerNorm::LayerNorm(ParameterSet& parameters, const std::string& name, int64_t features)
    : name_(absl::StrCat(name, " (LayerNorm ", features, ")")), features_(features) {
  weight_ = parameters.Add(name + ".weight", at::ones({features}));
  bias_ = parameters.Add(name + ".bias", at::zeros({features}));
}

at::Tensor LayerNorm::Forward(const ParameterSet& parameters, const at::Tensor& x, ForwardTrace* trace) const {
  const at::Tensor normalized = at::layer_norm(x, {features_}, {}, {}, 1e-5);
  const at::Tensor y = normalized * parameters.tensors[weight_] + parameters.tensors[bias_];
  if (trace != nullptr) {
    trace->layers.push_back(
        std::make_unique<AffineTrace>(name_, normalized.detach(), y, x.dim() - 1, weight_, bias_));
  }
  return y;
}

Embedding::Embedding(ParameterSet& parameters, const std::string& name, int64_t vocabulary, int64_t dim,
                     at::Generator& generator)
    : name_(absl::StrCat(name, " (Embedding ", vocabulary, "x", dim, ")")) {
  weight_ = parameters.Add(name + ".weight", at::empty({vocabulary, dim}).normal_(0, 1, generator));
}

at::Tensor Embedding::Forward(const ParameterSet& parameters, const at::Tensor& ids, ForwardTrace* trace) const {
  const at::Tensor y = at::embedding(parameters.tensors[weight_], ids);
  if (trace != nullptr) trace->layers.push_back(std::make_unique<EmbeddingTrace>(name_, ids, y, weight_));
  return y;
}

BatchNorm2d::BatchNorm2d(ParameterSet& parameters, const std::string& name, int64_t channels)
    : name_(absl::StrCat(name, " (BatchNorm2d ", channels, ")")) {
  weight_ = parameters.Add(name + ".weight", at::ones({channels}));
  bias_ = parameters.Add(name + ".bias", at::zeros({channels}));
}

at::Tensor BatchNorm2d::Forward(const ParameterSet& parameters, const at::Tensor& x, ForwardTrace* trace) const {
  if (trace != nullptr) trace->example_mixing_modules.push_back(name_);
  return at::batch_norm(x, parameters.tensors[weight_], parameters.tensors[bias_], {}, {},
                        /*training=*/true, 0.1, 1e-5, /*cudnn_enabled=*/false);
}

}  // namespace dpfleet::models
