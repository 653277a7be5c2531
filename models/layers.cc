#include "models/layers.h"

#include <torch/csrc/autograd/variable.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "models/batched_matmul.h"
#include "models/conv_gradients.h"

namespace dpfleet::models {
namespace {

// PyTorch's default initialisation of Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
at::Tensor UniformInit(at::IntArrayRef shape, int64_t fan_in, at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty(shape, at::kFloat).uniform_(-bound, bound, generator);
}

// Weight standardisation's epsilon: each filter is scaled by s = sqrt(var + eps).
constexpr double kStandardizationEpsilon = 1e-5;

// Returns r = var / (var + eps) = 1 - eps / s^2 per filter, from the scales s: a standardised
// filter w_hat of n values has ||w_hat||^2 = n r.
at::Tensor RetainedVariance(const at::Tensor& scale) {
  return 1.0 - kStandardizationEpsilon / scale.pow(2);
}

// Per-example squared norms [B], computed in the tensors' own precision and returned as float64 so
// that sums over layers do not lose it.
at::Tensor SquaredNormPerExample(const at::Tensor& per_example) {
  return per_example.flatten(1).pow(2).sum(1).to(at::kDouble);
}

// Per-example gradients of one weight (+ bias), materialised; the simplest trace, used by the
// affine norms whose gradients are only [B, C].
class MaterializedTrace : public LayerTrace {
 public:
  at::Tensor Absorb(const at::Tensor& output_grad) override {
    Materialize(output_grad);
    return at::Tensor();
  }

  at::Tensor SquaredNorms(const at::Tensor& output_grad, int64_t views) override {
    Materialize(output_grad);
    at::Tensor squared =
        at::zeros({output_sizes()[0] / views}, output_options().dtype(at::kDouble));
    for (const at::Tensor& g : per_example_) {
      squared += SquaredNormPerExample(internal::SumViews(g, views));
    }
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
      sums[indices[k]].add_(
          (g * factors.to(g.scalar_type()).view(shape)).sum(0).view_as(sums[indices[k]]));
    }
  }

 protected:
  MaterializedTrace(std::string name, at::Tensor output, std::vector<int> parameter_indices)
      : LayerTrace(std::move(name), output, std::move(parameter_indices)) {}
  // Fills per_example_ (one [B, ...] tensor per parameter index) from dL/d(output).
  virtual void ComputePerExample(const at::Tensor& output_grad) = 0;
  std::vector<at::Tensor> per_example_;

 private:
  void Materialize(const at::Tensor& output_grad) {
    if (per_example_.empty()) ComputePerExample(output_grad);
  }
};

class LinearTrace final : public LayerTrace {
 public:
  LinearTrace(std::string name, at::Tensor input, at::Tensor output, int weight, int bias)
      : LayerTrace(std::move(name), output, WeightAndBias(weight, bias)),
        input_(std::move(input)),
        weight_(weight),
        bias_(bias) {}

  // An example's views are more positions of it: [B K, T, d] is read as [B, K T, d].
  at::Tensor SquaredNorms(const at::Tensor& output_grad, int64_t views) override {
    const int64_t b = input_.size(0) / views;
    const at::Tensor x = input_.reshape({b, -1, input_.size(-1)});             // [B, T, d]
    const at::Tensor dy = output_grad.reshape({b, -1, output_grad.size(-1)});  // [B, T, p]
    const int64_t t = x.size(1), d = x.size(2), p = dy.size(2);
    at::Tensor squared;
    if (t == 1) {
      // Reductions straight from the inputs: no [B, d] temporary (linear heads have large d).
      squared = x.norm(2, at::IntArrayRef{1, 2}).to(at::kDouble).square() *
                dy.norm(2, at::IntArrayRef{1, 2}).to(at::kDouble).square();
    } else if (2 * t * t < p * d) {  // Ghost norm.
      squared = (internal::BatchedMatmul(x, x.transpose(1, 2)) *
                 internal::BatchedMatmul(dy, dy.transpose(1, 2)))
                    .sum({1, 2})
                    .to(at::kDouble);
    } else {  // Materialised per-example weight gradients [B, p, d].
      squared = SquaredNormPerExample(internal::BatchedMatmul(dy.transpose(1, 2), x));
    }
    if (bias_ >= 0) squared += SquaredNormPerExample(dy.sum(1));
    return squared;
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    const int64_t b = input_.size(0);
    const at::Tensor x = input_.reshape({b, -1, input_.size(-1)});
    const at::Tensor scaled = output_grad.reshape({b, -1, output_grad.size(-1)}) *
                              factors.to(output_grad.scalar_type()).view({b, 1, 1});
    // sum_i c_i dY_i^T X_i as one product over all (example, position) rows, into the sum.
    sums[weight_].addmm_(scaled.reshape({-1, scaled.size(2)}).t(), x.reshape({-1, x.size(2)}));
    if (bias_ >= 0) sums[bias_].add_(scaled.sum(at::IntArrayRef{0, 1}));
  }

 private:
  at::Tensor input_;
  int weight_;
  int bias_;
};

class Conv2dTrace final : public LayerTrace {
 public:
  // Largest block of per-example weight gradients, or of Gram matrices, formed at once.
  static constexpr double kChunkBytes = 64.0 * (1 << 20);

  Conv2dTrace(std::string name, const Conv2dOptions& options, at::Tensor input, at::Tensor output,
              at::Tensor weight_used, at::Tensor weight_scale, at::Tensor bias_used, int weight,
              int bias)
      : LayerTrace(std::move(name), output, WeightAndBias(weight, bias)),
        options_(options),
        input_(std::move(input)),
        weight_used_(std::move(weight_used)),
        weight_scale_(std::move(weight_scale)),
        bias_used_(std::move(bias_used)),
        weight_(weight),
        bias_(bias),
        plan_(PlanNorms()) {
    if (plan_.ghost && options_.standardize_weight) output_values_ = output.detach();
    if (plan_.ghost && plan_.shifted_gram) SetUpShiftedGram();
  }

  // Where the norms are materialised anyway and the per-example parameter gradients are smaller
  // than the output gradient (early layers with few channels and many positions), keeps those.
  at::Tensor Absorb(const at::Tensor& output_grad) override {
    if (plan_.ghost || weight_used_.numel() >= output_grad[0].numel()) return output_grad;
    // Gradients with respect to the weight the convolution ran with: a standardisation is pulled
    // back through by the norms' identity and, once, on the clipped sum (it is linear).
    const int64_t b = output_grad.size(0);
    per_example_weight_ = at::empty({b, weight_used_.numel()}, output_grad.options());
    internal::ForEachExampleBlockWeightGradient(
        output_grad, input_, weight_used_.sizes(), Geometry(), kChunkBytes,
        [&](int64_t start, const at::Tensor& g) {
          per_example_weight_.slice(0, start, start + g.size(0)).copy_(g);
        });
    if (bias_ >= 0) per_example_bias_ = output_grad.sum(at::IntArrayRef{2, 3});
    input_ = at::Tensor();  // Needed no more.
    return at::Tensor();
  }

  // With several views per example, the norms are taken from per-example gradients summed over
  // the views, also where ghost norms would be cheaper for one view.
  at::Tensor SquaredNorms(const at::Tensor& output_grad, int64_t views) override {
    if (!output_grad.defined()) {  // Absorb kept the per-example gradients.
      const at::Tensor weight = internal::SumViews(per_example_weight_, views);
      at::Tensor squared =
          PerExampleWeightNorms(weight.view({weight.size(0), options_.out_channels, -1}));
      if (bias_ >= 0) {
        squared += SquaredNormPerExample(internal::SumViews(per_example_bias_, views));
      }
      return squared;
    }
    at::Tensor squared =
        plan_.ghost && views == 1 ? GhostNorms(output_grad) : MaterializedNorms(output_grad, views);
    if (bias_ >= 0) {
      squared +=
          SquaredNormPerExample(internal::SumViews(output_grad.sum(at::IntArrayRef{2, 3}), views));
    }
    return squared;
  }

  // From kept per-example gradients, sum_i c_i g_i is a matrix-vector product. Otherwise it is the
  // ordinary batch weight gradient of the convolution with each example's output gradient scaled
  // by c_i: one call to the library's fast convolution backward.
  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    at::Tensor weight_grad;
    if (!output_grad.defined()) {
      const at::Tensor c = factors.to(per_example_weight_.scalar_type());
      weight_grad = per_example_weight_.t().mv(c);
      if (bias_ >= 0) sums[bias_].addmv_(per_example_bias_.t(), c);
    } else {
      const at::Tensor scaled =
          output_grad * factors.to(output_grad.scalar_type()).view({output_grad.size(0), 1, 1, 1});
      weight_grad = internal::ConvWeightGradient(scaled, input_, weight_used_.sizes(), Geometry());
      if (bias_ >= 0) sums[bias_].add_(scaled.sum(at::IntArrayRef{0, 2, 3}));
    }
    if (options_.standardize_weight) {
      weight_grad =
          PullBackThroughStandardization(weight_grad.view({1, options_.out_channels, -1}));
    }
    sums[weight_].add_(weight_grad.view_as(sums[weight_]));
  }

 private:
  internal::ConvGeometry Geometry() const {
    return {.stride = options_.stride, .padding = options_.padding, .groups = options_.groups};
  }

  // ||sum_l dy_l x_l^T||^2 = sum_{l,m} (x_l . x_m)(dy_l . dy_m), per group, in blocks of examples
  // so the Gram matrices stay within kChunkBytes. Where it is cheaper (stride 1), the patch Gram
  // x_l . x_m is not formed from unfolded patches: a patch is the padded input at its position
  // shifted by each kernel offset, so x_l . x_m = sum over offsets d of G[l + d, m + d], with G
  // the channel Gram of the padded input (PatchGramAndSums), k^2 times fewer products.
  //
  // With weight standardisation the parameter gradient of filter o is P_o g_o / s_o, where g_o is
  // the gradient w.r.t. the standardised filter w_o (n = ck values) and P_o = I - 11^T/n - w_o
  // w_o^T/n (PullBackThroughStandardization). Since 1 and w_o are orthogonal and ||w_o||^2 = n r_o
  // with r_o = var_o / (var_o + eps),
  //   ||P_o g_o||^2 = ||g_o||^2 - (1.g_o)^2 / n - (2 - r_o) (w_o.g_o)^2 / n,
  // where 1.g_o = sum_l dy_ol (sum of patch l) and w_o.g_o = sum_l dy_ol z_ol, z the convolution's
  // output before any bias: all three terms come from ghost quantities.
  at::Tensor GhostNorms(const at::Tensor& output_grad) const {
    const int64_t b = input_.size(0), g = options_.groups;
    const int64_t o = options_.out_channels / g;
    const int64_t positions = output_sizes()[2] * output_sizes()[3];
    const int64_t ck = options_.in_channels / g * options_.kernel * options_.kernel;
    at::Tensor dy_all = output_grad;
    if (options_.standardize_weight) {  // Weight each filter's term by 1 / s_o^2.
      dy_all = output_grad /
               weight_scale_.view({1, options_.out_channels, 1, 1}).to(output_grad.scalar_type());
    }
    // Per example and group: the padded input, its channel Gram and the gathered shifts, or the
    // unfolded patches; then the two L x L Gram matrices.
    const int64_t padded = PaddedPositions();
    const int64_t patch_values = plan_.shifted_gram ? options_.in_channels / g * padded +
                                                          padded * padded + shifted_gram_.numel()
                                                    : ck * positions;
    const double per_example_bytes =
        static_cast<double>(g * (patch_values + 2 * positions * positions) * input_.element_size());
    std::vector<at::Tensor> norms;
    internal::ForEachExampleBlock(b, per_example_bytes, kChunkBytes, [&](int64_t start, int64_t n) {
      const auto [patch_gram, patch_sums] = PatchGramAndSums(input_.slice(0, start, start + n));
      const at::Tensor dy = dy_all.slice(0, start, start + n).reshape({n * g, o, positions});
      at::Tensor squared =
          (patch_gram * internal::BatchedMatmul(dy.transpose(1, 2), dy)).sum({1, 2});
      if (options_.standardize_weight) {
        const double inverse_n = 1.0 / static_cast<double>(ck);
        // 1.g_o / s_o.
        const at::Tensor ones_term = dy.bmm(patch_sums.unsqueeze(2)).squeeze(2);  // [n g, o]
        // w_o.g_o / s_o: z the bias-free output [n g, o, L].
        at::Tensor z = output_values_.slice(0, start, start + n);
        if (bias_used_.defined()) z = z - bias_used_.view({1, options_.out_channels, 1, 1});
        const at::Tensor w_term = (dy * z.reshape({n * g, o, positions})).sum(2);  // [n g, o]
        const at::Tensor scale = weight_scale_.view({g, o}).repeat({n, 1}).to(dy.scalar_type());
        const at::Tensor r = RetainedVariance(scale);
        squared = squared - inverse_n * ones_term.pow(2).sum(1) -
                  inverse_n * ((2.0 - r) * w_term.pow(2)).sum(1);
      }
      norms.push_back(squared.view({n, g}).sum(1).to(at::kDouble));
    });
    return at::cat(norms);
  }

  // The positions of the input once padded for the convolution.
  int64_t PaddedPositions() const {
    return (input_.size(2) + 2 * options_.padding) * (input_.size(3) + 2 * options_.padding);
  }

  // Returns the patches' Gram matrices [n g, L, L] and sums [n g, L] (only with weight
  // standardisation; else undefined) for the examples `x`, per group, from unfolded patches or,
  // per plan_, from the channel Gram of the padded input.
  std::pair<at::Tensor, at::Tensor> PatchGramAndSums(const at::Tensor& x) const {
    const bool with_sums = options_.standardize_weight;
    const int64_t n = x.size(0), g = options_.groups, pad = options_.padding;
    const int64_t positions = output_sizes()[2] * output_sizes()[3];
    if (!plan_.shifted_gram) {
      const at::Tensor unfolded = internal::UnfoldPatches(x, options_.kernel, options_.stride, pad)
                                      .view({n * g, -1, positions});  // [n g, c k k, L]
      return {internal::BatchedMatmul(unfolded.transpose(1, 2), unfolded),
              with_sums ? unfolded.sum(1) : at::Tensor()};
    }
    const int64_t offsets = shifted_positions_.size(0);
    const at::Tensor padded =
        at::constant_pad_nd(x, {pad, pad, pad, pad}).reshape({n * g, options_.in_channels / g, -1});
    const at::Tensor channel_gram =
        internal::BatchedMatmul(padded.transpose(1, 2), padded).view({n * g, -1});
    const at::Tensor gram = channel_gram.index_select(1, shifted_gram_.flatten())
                                .view({n * g, offsets, positions * positions})
                                .sum(1)
                                .view({n * g, positions, positions});
    if (!with_sums) return {gram, at::Tensor()};
    const at::Tensor sums = padded.sum(1)
                                .index_select(1, shifted_positions_.flatten())
                                .view({n * g, offsets, positions})
                                .sum(1);
    return {gram, sums};
  }

  // Sets shifted_positions_ [k^2, L], the padded input position that output position l reads at
  // each kernel offset d, and shifted_gram_ [k^2, L^2], the flat index (l + d) * P + (m + d) of
  // every pair (l, m) into a channel Gram of the padded input (P positions).
  void SetUpShiftedGram() {
    const int64_t padded_width = input_.size(3) + 2 * options_.padding;
    const int64_t padded = PaddedPositions();
    const at::Tensor rows = at::arange(output_sizes()[2], at::kLong) * options_.stride;
    const at::Tensor columns = at::arange(output_sizes()[3], at::kLong) * options_.stride;
    std::vector<at::Tensor> shifted;
    for (int64_t i = 0; i < options_.kernel; ++i) {
      for (int64_t j = 0; j < options_.kernel; ++j) {
        shifted.push_back(
            ((rows + i).view({-1, 1}) * padded_width + (columns + j).view({1, -1})).flatten());
      }
    }
    shifted_positions_ = at::stack(shifted);
    shifted_gram_ = (shifted_positions_.unsqueeze(2) * padded + shifted_positions_.unsqueeze(1))
                        .view({shifted_positions_.size(0), -1});
  }

  // How the norms are taken, chosen by cost per example and group (o outputs, c input channels,
  // ck = c k^2 patch values, L output positions, P padded input positions): ghost norms cost
  // ~ L^2 (o + ck); materialising the per-example gradients through a grouped convolution costs
  // ~ L o ck, with about twice the constant in practice. A ghost layer takes its patches' Gram
  // matrix from shifts of the padded input's channel Gram (P^2 c) where that beats unfolded
  // patches (L^2 ck): at stride 1, not at stride 2. (Counting the cheaper Gram in the choice of
  // ghost norms would pick them for wrn16_4's 16x16 layers, where gathering the k^2 L^2 shifted
  // entries made them twice as slow as materialising.)
  struct NormPlan {
    bool ghost = false;
    bool shifted_gram = false;
  };
  NormPlan PlanNorms() const {
    const int64_t g = options_.groups;
    const double o = static_cast<double>(options_.out_channels / g);
    const double c = static_cast<double>(options_.in_channels / g);
    const double ck = c * static_cast<double>(options_.kernel * options_.kernel);
    const double l = static_cast<double>(output_sizes()[2] * output_sizes()[3]);
    const double p = static_cast<double>(PaddedPositions());
    return {.ghost = l * l * (o + ck) < 2 * l * o * ck, .shifted_gram = p * p * c < l * l * ck};
  }

  // The norms alone, in blocks of rows; with several views per example, from the rows' gradients
  // summed per example.
  at::Tensor MaterializedNorms(const at::Tensor& output_grad, int64_t views) const {
    std::vector<at::Tensor> norms;
    at::Tensor summed;
    if (views > 1) {
      summed =
          at::zeros({output_grad.size(0) / views, weight_used_.numel()}, output_grad.options());
    }
    internal::ForEachExampleBlockWeightGradient(
        output_grad, input_, weight_used_.sizes(), Geometry(), kChunkBytes,
        [&](int64_t start, const at::Tensor& per_row) {
          if (views > 1) {
            internal::AddViewsInto(per_row, start, views, summed);
            return;
          }
          norms.push_back(
              PerExampleWeightNorms(per_row.view({per_row.size(0), options_.out_channels, -1})));
        });
    if (views > 1) {
      return PerExampleWeightNorms(summed.view({summed.size(0), options_.out_channels, -1}));
    }
    return at::cat(norms);
  }

  // Returns [N] float64: the squared norms of per-example weight parameter gradients, given g
  // [N, O, ck] with respect to the weight the convolution ran with. Through a standardisation
  // they are sum_o ||P_o g_o||^2 / s_o^2 (see GhostNorms), from three reductions of g rather than
  // from pulled-back gradients.
  at::Tensor PerExampleWeightNorms(const at::Tensor& g) const {
    if (!options_.standardize_weight) return SquaredNormPerExample(g);
    const int64_t filters = options_.out_channels;
    const double inverse_n = 1.0 / static_cast<double>(g.size(2));
    const at::Tensor w_hat = weight_used_.view({filters, -1, 1}).to(g.scalar_type());
    const at::Tensor scale = weight_scale_.view({1, filters}).to(g.scalar_type());
    const at::Tensor r = RetainedVariance(scale);
    const at::Tensor w_dot_g = g.transpose(0, 1).bmm(w_hat).squeeze(2).t();  // [N, O]
    const at::Tensor per_filter = g.norm(2, 2).square() - inverse_n * g.sum(2).square() -
                                  inverse_n * (2.0 - r) * w_dot_g.square();
    return (per_filter / scale.pow(2)).sum(1).to(at::kDouble);
  }

  // W_hat = (W - mean) / s per output filter; the vector-Jacobian product of that map, applied to
  // gradients g [N, O, n] with respect to W_hat:
  //   dW = (g - mean(g) - W_hat mean(g * W_hat)) / s.
  at::Tensor PullBackThroughStandardization(const at::Tensor& g) const {
    const at::Tensor w_hat = weight_used_.view({1, options_.out_channels, -1}).to(g.scalar_type());
    return (g - g.mean(-1, true) - w_hat * (g * w_hat).mean(-1, true)) /
           weight_scale_.view({1, options_.out_channels, 1}).to(g.scalar_type());
  }

  Conv2dOptions options_;
  at::Tensor input_;
  at::Tensor weight_used_;   // The weight the convolution ran with (standardised if so).
  at::Tensor weight_scale_;  // Per-filter s of the standardisation, if any.
  at::Tensor bias_used_;     // The bias, if any.
  int weight_;
  int bias_;
  // The convolution's output, kept only for the ghost norms of a standardised weight.
  at::Tensor output_values_;
  NormPlan plan_;
  // Set by SetUpShiftedGram.
  at::Tensor shifted_positions_;
  at::Tensor shifted_gram_;
  // Set by Absorb when it keeps per-example gradients: [B, numel of weight] and [B, O].
  at::Tensor per_example_weight_;
  at::Tensor per_example_bias_;
};

// y = x_hat * gamma + beta per channel: per-example gradients are sums of dy * x_hat and of dy over
// every dimension but the batch and the channel.
class AffineTrace final : public MaterializedTrace {
 public:
  AffineTrace(std::string name, at::Tensor normalized, at::Tensor output, int64_t channel_dim,
              int64_t channels_per_affine, int weight, int bias)
      : MaterializedTrace(std::move(name), output, {weight, bias}),
        normalized_(std::move(normalized)),
        channel_dim_(channel_dim),
        channels_per_affine_(channels_per_affine) {}

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
    if (channels_per_affine_ > 1) {  // Channels sharing one affine parameter add up.
      for (at::Tensor& g : per_example_) g = g.view({g.size(0), -1, channels_per_affine_}).sum(2);
    }
    normalized_ = at::Tensor();  // Needed no more.
  }

  at::Tensor normalized_;
  int64_t channel_dim_;
  int64_t channels_per_affine_;
};

class EmbeddingTrace final : public LayerTrace {
 public:
  EmbeddingTrace(std::string name, at::Tensor ids, at::Tensor output, int weight)
      : LayerTrace(std::move(name), output, {weight}), ids_(std::move(ids)), weight_(weight) {}

  // Rows of the same token add up: ||g_i||^2 = sum_{t,s} [id_t == id_s] (dy_t . dy_s).
  at::Tensor SquaredNorms(const at::Tensor& output_grad, int64_t views) override {
    const int64_t b = ids_.size(0) / views;  // Views are more positions of an example.
    const at::Tensor ids = ids_.reshape({b, -1});
    const at::Tensor dy = output_grad.reshape({b, ids.size(1), -1});
    const at::Tensor same = ids.unsqueeze(2).eq(ids.unsqueeze(1)).to(dy.scalar_type());
    return (same * internal::BatchedMatmul(dy, dy.transpose(1, 2))).sum({1, 2}).to(at::kDouble);
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    const int64_t b = ids_.size(0);
    const at::Tensor dy = output_grad.reshape({b, -1, output_grad.size(-1)}) *
                          factors.to(output_grad.scalar_type()).view({b, 1, 1});
    sums[weight_].index_add_(0, ids_.reshape({-1}), dy.reshape({-1, dy.size(2)}));
  }

 private:
  at::Tensor ids_;
  int weight_;
};

}  // namespace

LayerTrace::LayerTrace(std::string name, const at::Tensor& output,
                       std::vector<int> parameter_indices)
    : name_(std::move(name)),
      output_sizes_(output.sizes().vec()),
      output_options_(output.options()),
      parameter_indices_(std::move(parameter_indices)) {
  if (!output.requires_grad()) return;
  output_edge_ = torch::autograd::impl::gradient_edge(output);
  auto visitor = visitor_;
  output.register_hook([visitor](const at::Tensor& gradient) {
    if (*visitor) (*visitor)(gradient);
  });
}

int ParameterSet::Add(const std::string& name, at::Tensor tensor) {
  tensors.push_back(tensor.set_requires_grad(true));
  names.push_back(name);
  return static_cast<int>(tensors.size()) - 1;
}

Linear::Linear(ParameterSet& parameters, const std::string& name, int64_t in, int64_t out,
               bool bias, at::Generator& generator)
    : name_(absl::StrCat(name, " (Linear ", in, "->", out, ")")) {
  weight_ = parameters.Add(name + ".weight", UniformInit({out, in}, in, generator));
  if (bias) bias_ = parameters.Add(name + ".bias", UniformInit({out}, in, generator));
}

at::Tensor Linear::Forward(const ParameterSet& parameters, const at::Tensor& x,
                           ForwardTrace* trace) const {
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
  weight_ = parameters.Add(name + ".weight",
                           UniformInit({options.out_channels, options.in_channels / options.groups,
                                        options.kernel, options.kernel},
                                       fan_in, generator));
  if (options.bias)
    bias_ = parameters.Add(name + ".bias", UniformInit({options.out_channels}, fan_in, generator));
}

at::Tensor Conv2d::Forward(const ParameterSet& parameters, const at::Tensor& x,
                           ForwardTrace* trace) const {
  at::Tensor weight = parameters.tensors[weight_];
  at::Tensor standardized, scale;
  if (options_.standardize_weight) {
    const at::Tensor flat = weight.view({options_.out_channels, -1});
    const at::Tensor mean = flat.mean(1, true);
    scale = (flat.var(1, /*unbiased=*/false, true) + kStandardizationEpsilon).sqrt();
    standardized = (flat - mean) / scale;
    weight = standardized.view_as(weight);
  }
  const at::Tensor y = at::conv2d(x, weight, bias_ >= 0 ? parameters.tensors[bias_] : at::Tensor(),
                                  {options_.stride, options_.stride},
                                  {options_.padding, options_.padding}, {1, 1}, options_.groups);
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<Conv2dTrace>(
        name_, options_, x.detach(), y, weight.detach(),
        scale.defined() ? scale.detach() : at::Tensor(),
        bias_ >= 0 ? parameters.tensors[bias_].detach() : at::Tensor(), weight_, bias_));
  }
  return y;
}

GroupNorm::GroupNorm(ParameterSet& parameters, const std::string& name, int64_t groups,
                     int64_t channels, int64_t channels_per_affine)
    : name_(absl::StrCat(name, " (GroupNorm ", groups, "x", channels / groups, ")")),
      groups_(groups),
      channels_per_affine_(channels_per_affine) {
  weight_ = parameters.Add(name + ".weight", at::ones({channels / channels_per_affine}));
  bias_ = parameters.Add(name + ".bias", at::zeros({channels / channels_per_affine}));
}

at::Tensor GroupNorm::Forward(const ParameterSet& parameters, const at::Tensor& x,
                              ForwardTrace* trace) const {
  const at::Tensor normalized = at::group_norm(x, groups_, {}, {}, 1e-5);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  auto per_channel = [&](const at::Tensor& p) {
    return (channels_per_affine_ > 1 ? p.repeat_interleave(channels_per_affine_) : p).view(shape);
  };
  const at::Tensor y = normalized * per_channel(parameters.tensors[weight_]) +
                       per_channel(parameters.tensors[bias_]);
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<AffineTrace>(name_, normalized.detach(), y, 1,
                                                          channels_per_affine_, weight_, bias_));
  }
  return y;
}

LayerNorm::LayerNorm(ParameterSet& parameters, const std::string& name, int64_t features)
    : name_(absl::StrCat(name, " (LayerNorm ", features, ")")), features_(features) {
  weight_ = parameters.Add(name + ".weight", at::ones({features}));
  bias_ = parameters.Add(name + ".bias", at::zeros({features}));
}

at::Tensor LayerNorm::Forward(const ParameterSet& parameters, const at::Tensor& x,
                              ForwardTrace* trace) const {
  const at::Tensor normalized = at::layer_norm(x, {features_}, {}, {}, 1e-5);
  const at::Tensor y = normalized * parameters.tensors[weight_] + parameters.tensors[bias_];
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<AffineTrace>(name_, normalized.detach(), y,
                                                          x.dim() - 1, 1, weight_, bias_));
  }
  return y;
}

Embedding::Embedding(ParameterSet& parameters, const std::string& name, int64_t vocabulary,
                     int64_t dim, at::Generator& generator)
    : name_(absl::StrCat(name, " (Embedding ", vocabulary, "x", dim, ")")) {
  weight_ = parameters.Add(name + ".weight", at::empty({vocabulary, dim}).normal_(0, 1, generator));
}

at::Tensor Embedding::Forward(const ParameterSet& parameters, const at::Tensor& ids,
                              ForwardTrace* trace) const {
  const at::Tensor y = at::embedding(parameters.tensors[weight_], ids);
  if (trace != nullptr)
    trace->layers.push_back(std::make_unique<EmbeddingTrace>(name_, ids, y, weight_));
  return y;
}

BatchNorm2d::BatchNorm2d(ParameterSet& parameters, const std::string& name, int64_t channels)
    : name_(absl::StrCat(name, " (BatchNorm2d ", channels, ")")) {
  weight_ = parameters.Add(name + ".weight", at::ones({channels}));
  bias_ = parameters.Add(name + ".bias", at::zeros({channels}));
}

at::Tensor BatchNorm2d::Forward(const ParameterSet& parameters, const at::Tensor& x,
                                ForwardTrace* trace) const {
  if (trace != nullptr) trace->example_mixing_modules.push_back(name_);
  return at::batch_norm(x, parameters.tensors[weight_], parameters.tensors[bias_], {}, {},
                        /*training=*/true, 0.1, 1e-5, /*cudnn_enabled=*/false);
}

}  // namespace dpfleet::models
