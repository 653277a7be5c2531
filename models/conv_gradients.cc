#include "models/conv_gradients.h"

#include <algorithm>

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
  ForEachExampleBlock(
      input.size(0), static_cast<double>(per_example * input.element_size()), max_bytes,
      [&](int64_t start, int64_t n) {
        const at::Tensor x = input.slice(0, start, start + n);
        const at::Tensor dy = grad.slice(0, start, start + n);
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

}  // namespace dpfleet::models::internal
