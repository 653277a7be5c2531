#include "models/equivariant.h"

#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "models/conv_gradients.h"

namespace dpfleet::models {
namespace {

// Group elements as (rotation k in 0..3, flip f in 0..1), element = 4 f + k, acting as rotate(k)
// after flip(f). Composition: (k1, f1)(k2, f2) = (k1 + (-1)^f1 k2, f1 xor f2).
int Compose(int a, int b) {
  const int k1 = a % 4, f1 = a / 4, k2 = b % 4, f2 = b / 4;
  const int k = ((f1 ? k1 - k2 : k1 + k2) % 4 + 4) % 4;
  return 4 * (f1 ^ f2) + k;
}

int Inverse(int a) { return a >= 4 ? a : (4 - a) % 4; }

// The expanded convolution's weight, its gradient, and the map back to the shared filter.
class D4ConvTrace final : public LayerTrace {
 public:
  D4ConvTrace(std::string name, at::Tensor input, const at::Tensor& output, at::Tensor index,
              D4GradientOrders orders, int64_t padding, int weight, int64_t parameter_numel)
      : LayerTrace(std::move(name), output, {weight}),
        input_(std::move(input)),
        index_(std::move(index)),
        orders_(std::move(orders)),
        padding_(padding),
        weight_(weight),
        parameter_numel_(parameter_numel) {}

  // Largest block of reordered input patches formed at once.
  static constexpr double kChunkBytes = 64.0 * (1 << 20);

  // Keeps the per-example gradients of the shared filter when they are smaller than the output
  // gradient (they are computed for the norms anyway).
  at::Tensor Absorb(const at::Tensor& output_grad) override {
    if (parameter_numel_ >= output_grad[0].numel()) return output_grad;
    per_example_ = at::empty({output_grad.size(0), parameter_numel_}, output_grad.options());
    ForEachSharedGradient(output_grad, [&](int64_t start, const at::Tensor& shared) {
      per_example_.slice(0, start, start + shared.size(0)).copy_(shared);
    });
    input_ = at::Tensor();  // Needed no more.
    return at::Tensor();
  }

  at::Tensor SquaredNorms(const at::Tensor& output_grad) override {
    if (!output_grad.defined()) return per_example_.pow(2).sum(1).to(at::kDouble);
    std::vector<at::Tensor> norms;
    ForEachSharedGradient(output_grad, [&](int64_t, const at::Tensor& shared) {
      norms.push_back(shared.pow(2).sum(1).to(at::kDouble));
    });
    return at::cat(norms);
  }

  void AccumulateScaled(const at::Tensor& output_grad, const at::Tensor& factors,
                        std::vector<at::Tensor>& sums) override {
    if (!output_grad.defined()) {
      sums[weight_].view({-1}).addmv_(per_example_.t(), factors.to(per_example_.scalar_type()));
      return;
    }
    const at::Tensor scaled =
        output_grad * factors.to(output_grad.scalar_type()).view({output_grad.size(0), 1, 1, 1});
    const at::Tensor expanded =
        internal::ConvWeightGradient(scaled, input_, index_.sizes(), {.padding = padding_});
    sums[weight_].view({-1}).index_add_(0, index_.flatten(), expanded.flatten());
  }

 private:
  // Calls visit(start, shared) for blocks of examples, shared [n, parameter_numel] their
  // gradients with respect to the shared filter, by whichever of two exact ways forms the smaller
  // intermediate per example:
  //   the expanded filter's per-example gradients (8 F x patch values, for F output fields),
  //   through a grouped convolution, each shared entry's 8 copies then gathered and summed; or
  //   the input patches reordered by each group element (8 x patch x L values, L positions):
  //   every element g places each shared entry of a field's filter exactly once in its row of
  //   the expanded filter, so with dy split by field f and element g, and X_g the patches with
  //   their rows in g's placement, d theta_f = sum_g dy_{f,g} X_g^T, one batched product.
  // The first wins for early layers (many positions), the second for late ones (many fields).
  void ForEachSharedGradient(const at::Tensor& output_grad,
                             const std::function<void(int64_t, const at::Tensor&)>& visit) const {
    const int64_t fields = index_.size(0) / kD4Order;
    const int64_t positions = output_grad.size(2) * output_grad.size(3);
    if (positions > fields) {
      internal::ForEachExampleBlockWeightGradient(
          output_grad, input_, index_.sizes(), {.padding = padding_}, kChunkBytes,
          [&](int64_t start, const at::Tensor& expanded) {
            visit(start, expanded.index_select(1, orders_.expanded_by_shared)
                             .view({expanded.size(0), parameter_numel_, kD4Order})
                             .sum(2));
          });
      return;
    }
    const int64_t b = input_.size(0), kernel = index_.size(2);
    const int64_t patch = index_.size(1) * kernel * kernel;  // Shared entries per field.
    const double per_example_bytes =
        static_cast<double>((kD4Order + 1) * patch * positions * input_.element_size());
    internal::ForEachExampleBlock(b, per_example_bytes, kChunkBytes, [&](int64_t start, int64_t n) {
      const at::Tensor patches = internal::UnfoldPatches(input_.slice(0, start, start + n), kernel,
                                                         /*stride=*/1, padding_);  // [n, patch, L]
      const at::Tensor reordered = patches.index_select(1, orders_.patch_rows_by_element)
                                       .view({n, kD4Order, patch, positions});
      const at::Tensor dy =
          output_grad.slice(0, start, start + n).reshape({n, fields, kD4Order, positions});
      visit(start, at::einsum("nfgt,ngmt->nfm", {dy, reordered}).reshape({n, -1}));
    });
  }

  at::Tensor input_;
  at::Tensor index_;
  D4GradientOrders orders_;
  int64_t padding_;
  int weight_;
  int64_t parameter_numel_;
  at::Tensor per_example_;  // Set by Absorb: [B, parameter_numel].
};

}  // namespace

at::Tensor TransformD4(const at::Tensor& images, int element) {
  const int64_t h = images.dim() - 2, w = images.dim() - 1;
  at::Tensor out = element >= 4 ? images.flip({w}) : images;
  const int rotations = element % 4;
  return rotations == 0 ? out : out.rot90(rotations, {h, w});
}

at::Tensor GroupPool(const at::Tensor& x) {
  return x.view({x.size(0), x.size(1) / kD4Order, kD4Order, x.size(2), x.size(3)}).mean(2);
}

D4Conv2d::D4Conv2d(ParameterSet& parameters, const std::string& name, int64_t in_channels,
                   int64_t in_fields, int64_t out_fields, int64_t kernel, at::Generator& generator)
    : name_(absl::StrCat(name, " (D4Conv2d ", in_fields == 0 ? "lift " : "",
                         in_fields == 0 ? in_channels : in_fields, "->", out_fields, " fields, k",
                         kernel, ")")),
      kernel_(kernel),
      out_channels_(out_fields * kD4Order),
      in_channels_(in_fields == 0 ? in_channels : in_fields * kD4Order) {
  const bool lifting = in_fields == 0;
  // Shared filter: [out_fields, in_channels, k, k] for lifting, [out_fields, in_fields, 8, k, k]
  // else.
  std::vector<int64_t> shape =
      lifting ? std::vector<int64_t>{out_fields, in_channels, kernel, kernel}
              : std::vector<int64_t>{out_fields, in_fields, kD4Order, kernel, kernel};
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const int64_t fan_in = in_channels_ * kernel * kernel;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight_ = parameters.Add(name + ".weight",
                           at::empty(shape, at::kFloat).uniform_(-bound, bound, generator));
  // index_[o * 8 + g][i] = the shared entry that expanded entry takes: filter transformed by g, and
  // (between group maps) the input group axis permuted so that input element h reads g^-1 h.
  const at::Tensor ids = at::arange(numel, at::kLong).view(shape);
  std::vector<at::Tensor> rows;
  for (int64_t f = 0; f < out_fields; ++f) {
    for (int g = 0; g < kD4Order; ++g) {
      at::Tensor filter = ids[f];  // [in_channels, k, k] or [in_fields, 8, k, k]
      if (!lifting) {
        std::vector<int64_t> permutation;
        for (int h = 0; h < kD4Order; ++h) permutation.push_back(Compose(Inverse(g), h));
        filter = filter.index_select(1, at::tensor(permutation, at::kLong));
      }
      rows.push_back(TransformD4(filter, g).reshape({in_channels_, kernel, kernel}));
    }
  }
  index_ = at::stack(rows).contiguous();  // [out_fields * 8, in_channels_, k, k]
  // Every shared entry appears once per group element, so sorted the expanded entries come in
  // runs of kD4Order per shared entry; and field 0's row for element g is a permutation of the
  // patch rows, the same for every field, inverted by sorting.
  orders_.expanded_by_shared =
      std::get<1>(index_.flatten().sort(/*stable=*/true, 0, /*descending=*/false));
  std::vector<at::Tensor> rows_by_element;
  for (int g = 0; g < kD4Order; ++g) {
    rows_by_element.push_back(std::get<1>(index_[g].flatten().sort(/*stable=*/true, 0, false)));
  }
  orders_.patch_rows_by_element = at::cat(rows_by_element);
}

at::Tensor D4Conv2d::Forward(const ParameterSet& parameters, const at::Tensor& x,
                             ForwardTrace* trace) const {
  const at::Tensor& shared = parameters.tensors[weight_];
  const at::Tensor expanded =
      shared.view({-1}).index_select(0, index_.flatten()).view(index_.sizes());
  const int64_t padding = kernel_ / 2;
  const at::Tensor y = at::conv2d(x, expanded, {}, {1, 1}, {padding, padding});
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<D4ConvTrace>(name_, x.detach(), y, index_, orders_,
                                                          padding, weight_, shared.numel()));
  }
  return y;
}

}  // namespace dpfleet::models
