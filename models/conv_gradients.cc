#include "models/conv_gradients.h"

#include <algorithm>
#include <vector>

#include "models/batched_matmul.h"

namespace dpfleet::models::internal {

at::Tensor ConvWeightGradient(const at::Tensor& grad, const at::Tensor& input,
                              at::IntArrayRef weight_shape, const ConvGeometry& geometry) {
  // Only the weight gradient is asked for, so the weight's values are never read: its shape
  // suffices.
  return std::get<1>(at::convolution_backward(
      grad, input, at::empty(weight_shape, input.options()), c10::nullopt,
      {geometry.stride, geometry.stride}, {geometry.padding, geometry.padding}, {1, 1},
      /*transposed=*/false, {0, 0}, geometry.groups, {false, true, false}));
}

at::Tensor UnfoldPatches(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const at::Tensor padded =
      padding > 0 ? at::constant_pad_nd(x, {padding, padding, padding, padding}) : x.contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = padded.size(2), w = padded.size(3);
  const int64_t rows = (h - kernel) / stride + 1, columns = (w - kernel) / stride + 1;
  return padded
      .as_strided({n, c, kernel, kernel, rows, columns},
                  {c * h * w, h * w, w, 1, stride * w, stride})
      .reshape({n, c * kernel * kernel, rows * columns});
}

void ForEachExampleBlock(int64_t examples, double per_example_bytes, double max_bytes,
                         const std::function<void(int64_t, int64_t)>& visit) {
  const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(max_bytes / per_example_bytes));
  for (int64_t start = 0; start < examples; start += chunk) {
    visit(start, std::min(chunk, examples - start));
  }
}

void ForEachExampleBlockWeightGradient(
    const at::Tensor& grad, const at::Tensor& input, at::IntArrayRef weight_shape,
    const ConvGeometry& geometry, double max_bytes,
    const std::function<void(int64_t, const at::Tensor&)>& visit) {
  int64_t per_example = 1;
  for (int64_t d : weight_shape) per_example *= d;
  const int64_t kernel = weight_shape[2], positions = grad.size(2) * grad.size(3);
  // The grouped convolution vectorises over input channels and positions. With few input
  // channels (grey or RGB images) or few positions, its per-example gradients are slower than a
  // product of the output gradient with unfolded patches. At batch 256 (grouped against unfolded,
  // ms): 1 channel 28x28 5.5 / 3.9, 3 channels 32x32 12.7 / 9.3, 16 channels 32x32 27 / 42,
  // 64 channels 16x16 26 / 47, 128 channels 8x8 65 / 51, 256 channels 8x8 212 / 165, 128 channels
  // 4x4 42 / 32.
  const bool unfold = geometry.groups == 1 && (weight_shape[1] < 8 || positions <= 64);
  const int64_t patch_values = unfold ? per_example / weight_shape[0] * positions : 0;
  ForEachExampleBlock(
      input.size(0), static_cast<double>((per_example + patch_values) * input.element_size()),
      max_bytes, [&](int64_t start, int64_t n) {
        const at::Tensor x = input.slice(0, start, start + n);
        const at::Tensor dy = grad.slice(0, start, start + n);
        if (unfold) {
          const at::Tensor patches =
              UnfoldPatches(x, kernel, geometry.stride, geometry.padding);  // [n, c k k, L]
          visit(start,
                BatchedMatmul(dy.reshape({n, dy.size(1), positions}), patches.transpose(1, 2))
                    .view({n, -1}));
          return;
        }
        std::vector<int64_t> shape = weight_shape.vec();
        shape[0] *= n;
        ConvGeometry folded = geometry;
        folded.groups *= n;
        visit(start,
              ConvWeightGradient(dy.reshape({1, n * dy.size(1), dy.size(2), dy.size(3)}),
                                 x.reshape({1, n * x.size(1), x.size(2), x.size(3)}), shape, folded)
                  .view({n, -1}));
      });
}

at::Tensor SumViews(const at::Tensor& per_row, int64_t views) {
  if (views == 1) return per_row;
  std::vector<int64_t> shape = per_row.sizes().vec();
  shape[0] /= views;
  shape.insert(shape.begin() + 1, views);
  return per_row.reshape(shape).sum(1);
}

void AddViewsInto(const at::Tensor& block, int64_t start, int64_t views, at::Tensor& per_example) {
  const at::Tensor examples =
      at::arange(start, start + block.size(0), at::kLong).floor_divide_(views);
  per_example.index_add_(0, examples, block.reshape({block.size(0), -1}));
}

}  // namespace dpfleet::models::internal
