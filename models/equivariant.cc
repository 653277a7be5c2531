#include "models/equivariant.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "models/batched_matmul.h"
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

// Returns [n, shared] with out[i][p] = sum over j < kD4Order of expanded[i][copies[p * kD4Order +
// j]], for expanded [n, kD4Order * shared] and `copies` the expanded entries sorted by the shared
// entry they take. One pass over each example's row, the examples split over the threads: through
// index_select along the entries and a sum over runs of 8, the two took 88 + 86 ms of eq_cnn's
// 584 ms DP step (batch 256, profiled).
at::Tensor SumCopies(const at::Tensor& expanded, const at::Tensor& copies, int64_t shared) {
  const at::Tensor rows = expanded.contiguous();
  const at::Tensor order = copies.contiguous();
  at::Tensor out = at::empty({rows.size(0), shared}, rows.options());
  const int64_t width = rows.size(1);
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "SumCopies", [&] {
    const scalar_t* in = rows.data_ptr<scalar_t>();
    const int64_t* index = order.data_ptr<int64_t>();
    scalar_t* result = out.data_ptr<scalar_t>();
    at::parallel_for(0, rows.size(0), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* row = in + i * width;
        for (int64_t p = 0; p < shared; ++p) {
          scalar_t sum = 0;
          for (int j = 0; j < kD4Order; ++j) sum += row[index[p * kD4Order + j]];
          result[i * shared + p] = sum;
        }
      }
    });
  });
  return out;
}

// Returns [n, rows.numel(), t] with out[i][k] = x[i][rows[k]], for x [n, r, t]: row copies, the
// examples split over the threads (index_select along dimension 1 copies value by value: 332 ms of
// eq_resnet9's DP step at batch 256).
at::Tensor GatherRows(const at::Tensor& x, const at::Tensor& rows) {
  const at::Tensor in = x.contiguous();
  const at::Tensor order = rows.contiguous();
  const int64_t n = in.size(0), r = in.size(1), t = in.size(2), k = order.numel();
  at::Tensor out = at::empty({n, k, t}, in.options());
  const int64_t* index = order.data_ptr<int64_t>();
  const int64_t row_bytes = t * in.element_size();
  const char* from = static_cast<const char*>(in.data_ptr());
  char* to = static_cast<char*>(out.data_ptr());
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        std::memcpy(to + (i * k + j) * row_bytes, from + (i * r + index[j]) * row_bytes, row_bytes);
      }
    }
  });
  return out;
}

// The expanded convolution's weight, its gradient, and the map back to the shared filter.
class D4ConvTrace final : public LayerTrace {
 public:
  D4ConvTrace(std::string name, at::Tensor input, const at::Tensor& output, at::Tensor index,
              at::Tensor expanded_by_shared, at::Tensor patch_rows_by_copy, int64_t padding,
              int weight, int64_t parameter_numel)
      : LayerTrace(std::move(name), output, {weight}),
        input_(std::move(input)),
        index_(std::move(index)),
        expanded_by_shared_(std::move(expanded_by_shared)),
        patch_rows_by_copy_(std::move(patch_rows_by_copy)),
        padding_(padding),
        weight_(weight),
        parameter_numel_(parameter_numel) {}

  // Largest block of per-example expanded gradients, or of placed patches, formed at once.
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

  at::Tensor SquaredNorms(const at::Tensor& output_grad, int64_t views) override {
    if (!output_grad.defined()) {
      return internal::SumViews(per_example_, views).pow(2).sum(1).to(at::kDouble);
    }
    if (views > 1) {
      at::Tensor summed =
          at::zeros({output_grad.size(0) / views, parameter_numel_}, output_grad.options());
      ForEachSharedGradient(output_grad, [&](int64_t start, const at::Tensor& shared) {
        internal::AddViewsInto(shared, start, views, summed);
      });
      return summed.pow(2).sum(1).to(at::kDouble);
    }
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
  //   the expanded filter's per-example gradients (8 F x patch values, for F output fields;
  //   conv_gradients.h), each shared entry's 8 copies then summed; or
  //   the input patches with their rows placed by each group element (8 x patch x L values, L
  //   positions): every element g places each shared entry m of a field's filter exactly once in
  //   its row of the expanded filter, at patch row r_g(m), so with dy split by field f and element
  //   g, d theta_f[m] = sum_{g,l} dy_{f,g}[l] X[r_g(m), l], one product per example.
  // The first wins for early layers (many positions), the second for late ones (many fields).
  void ForEachSharedGradient(const at::Tensor& output_grad,
                             const std::function<void(int64_t, const at::Tensor&)>& visit) const {
    const int64_t fields = index_.size(0) / kD4Order;
    const int64_t positions = output_grad.size(2) * output_grad.size(3);
    if (positions > fields) {
      internal::ForEachExampleBlockWeightGradient(
          output_grad, input_, index_.sizes(), {.padding = padding_}, kChunkBytes,
          [&](int64_t start, const at::Tensor& expanded) {
            visit(start, SumCopies(expanded, expanded_by_shared_, parameter_numel_));
          });
      return;
    }
    const int64_t kernel = index_.size(2);
    const int64_t patch = index_.size(1) * kernel * kernel;  // Shared entries per field.
    const double per_example_bytes =
        static_cast<double>((kD4Order + 1) * patch * positions * input_.element_size());
    internal::ForEachExampleBlock(
        input_.size(0), per_example_bytes, kChunkBytes, [&](int64_t start, int64_t n) {
          const at::Tensor patches = internal::UnfoldPatches(
              input_.slice(0, start, start + n), kernel, /*stride=*/1, padding_);  // [n, patch, L]
          // [n, patch, 8 L]: shared entry m's row at each element's placement.
          const at::Tensor placed =
              GatherRows(patches, patch_rows_by_copy_).view({n, patch, kD4Order * positions});
          const at::Tensor dy =
              output_grad.slice(0, start, start + n).reshape({n, fields, kD4Order * positions});
          visit(start, internal::BatchedMatmul(dy, placed.transpose(1, 2)).view({n, -1}));
        });
  }

  at::Tensor input_;
  at::Tensor index_;
  at::Tensor expanded_by_shared_;
  at::Tensor patch_rows_by_copy_;
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
  expanded_by_shared_ =
      std::get<1>(index_.flatten().sort(/*stable=*/true, 0, /*descending=*/false));
  std::vector<at::Tensor> rows_by_element;
  for (int g = 0; g < kD4Order; ++g) {
    rows_by_element.push_back(std::get<1>(index_[g].flatten().sort(/*stable=*/true, 0, false)));
  }
  patch_rows_by_copy_ = at::stack(rows_by_element, 1).flatten();
}

at::Tensor D4Conv2d::Forward(const ParameterSet& parameters, const at::Tensor& x,
                             ForwardTrace* trace) const {
  const at::Tensor& shared = parameters.tensors[weight_];
  const at::Tensor expanded =
      shared.view({-1}).index_select(0, index_.flatten()).view(index_.sizes());
  const int64_t padding = kernel_ / 2;
  const at::Tensor y = at::conv2d(x, expanded, {}, {1, 1}, {padding, padding});
  if (trace != nullptr) {
    trace->layers.push_back(std::make_unique<D4ConvTrace>(name_, x.detach(), y, index_,
                                                          expanded_by_shared_, patch_rows_by_copy_,
                                                          padding, weight_, shared.numel()));
  }
  return y;
}

}  // namespace dpfleet::models
