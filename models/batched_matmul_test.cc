#include "models/batched_matmul.h"

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace dpfleet::models::internal {
namespace {

void ExpectMatchesBmm(const at::Tensor& a, const at::Tensor& b, double tolerance) {
  const at::Tensor ours = BatchedMatmul(a, b);
  const at::Tensor reference = a.bmm(b);
  ASSERT_EQ(ours.sizes(), reference.sizes());
  if (reference.numel() == 0) return;
  EXPECT_LT((ours - reference).abs().max().item<double>(),
            tolerance * (1 + reference.abs().max().item<double>()));
}

TEST(BatchedMatmul, MatchesBmmInEveryLayout) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    const double tolerance = type == at::kFloat ? 1e-5 : 1e-12;
    const auto options = at::TensorOptions().dtype(type);
    const at::Tensor a = at::randn({7, 5, 9}, options), b = at::randn({7, 9, 4}, options);
    ExpectMatchesBmm(a, b, tolerance);
    // Transposed views of either operand, and both.
    const at::Tensor a_columns = at::randn({7, 9, 5}, options).transpose(1, 2);
    const at::Tensor b_columns = at::randn({7, 4, 9}, options).transpose(1, 2);
    ExpectMatchesBmm(a_columns, b, tolerance);
    ExpectMatchesBmm(a, b_columns, tolerance);
    ExpectMatchesBmm(a_columns, b_columns, tolerance);
    // A Gram matrix of one tensor with itself, and strided slices that need a copy.
    ExpectMatchesBmm(a, a.transpose(1, 2), tolerance);
    ExpectMatchesBmm(at::randn({7, 5, 18}, options).slice(2, 0, 18, 2), b, tolerance);
    // Batch slices of a larger tensor (a batch stride that is not the matrix size).
    ExpectMatchesBmm(at::randn({9, 5, 9}, options).slice(0, 2, 9), b, tolerance);
    // Degenerate sizes.
    ExpectMatchesBmm(at::randn({7, 1, 9}, options), at::randn({7, 9, 1}, options), tolerance);
    ExpectMatchesBmm(at::randn({0, 5, 9}, options), at::randn({0, 9, 4}, options), tolerance);
    ExpectMatchesBmm(at::randn({7, 5, 0}, options), at::randn({7, 0, 4}, options), tolerance);
  }
}

TEST(BatchedMatmul, RefusesWhatItCannotMultiply) {
  EXPECT_THROW(BatchedMatmul(at::randn({2, 3, 4}), at::randn({2, 5, 6})), c10::Error);
  EXPECT_THROW(BatchedMatmul(at::randn({2, 3, 4}), at::randn({2, 4, 6}, at::kDouble)), c10::Error);
  EXPECT_THROW(BatchedMatmul(at::ones({2, 3, 4}, at::kLong), at::ones({2, 4, 6}, at::kLong)),
               c10::Error);
}

}  // namespace
}  // namespace dpfleet::models::internal
