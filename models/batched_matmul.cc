#include "models/batched_matmul.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>

// The Fortran (column-major) interface, which every BLAS exports.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
}

namespace dpfleet::models::internal {
namespace {

// The BLAS gemm of one floating type.
template <typename T>
struct Blas;
template <>
struct Blas<float> {
  static constexpr auto gemm = &sgemm_;
};
template <>
struct Blas<double> {
  static constexpr auto gemm = &dgemm_;
};

// A batch of row-major matrices x [n, rows, columns] as column-major BLAS reads their transposes:
// with flag 'N' when rows are contiguous (leading dimension the row stride), 'T' when columns
// are. Anything else is copied to contiguous first.
struct TransposedOperand {
  at::Tensor tensor;
  char flag = 'N';
  int leading = 1;
};

TransposedOperand AsTransposed(const at::Tensor& x) {
  const int64_t rows = x.size(1), columns = x.size(2);
  if (x.stride(2) == 1 && x.stride(1) >= std::max<int64_t>(1, columns)) {
    return {x, 'N', static_cast<int>(x.stride(1))};
  }
  if (x.stride(1) == 1 && x.stride(2) >= std::max<int64_t>(1, rows)) {
    return {x, 'T', static_cast<int>(x.stride(2))};
  }
  return {x.contiguous(), 'N', static_cast<int>(std::max<int64_t>(1, columns))};
}

template <typename T>
void Multiply(const TransposedOperand& a, const TransposedOperand& b, at::Tensor& c) {
  const int64_t n = c.size(0);
  const int m = static_cast<int>(c.size(1)), p = static_cast<int>(c.size(2));
  const int k = static_cast<int>(a.tensor.size(2));
  const int ldc = std::max(1, p);
  const T* a_data = a.tensor.data_ptr<T>();
  const T* b_data = b.tensor.data_ptr<T>();
  T* c_data = c.data_ptr<T>();
  const int64_t a_stride = a.tensor.stride(0), b_stride = b.tensor.stride(0);
  const T one = 1, zero = 0;
  // Row-major c = a b is column-major c^T = b^T a^T.
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Blas<T>::gemm(&b.flag, &a.flag, &p, &m, &k, &one, b_data + i * b_stride, &b.leading,
                    a_data + i * a_stride, &a.leading, &zero, c_data + i * m * p, &ldc);
    }
  });
}

}  // namespace

at::Tensor BatchedMatmul(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
              "BatchedMatmul: shapes ", a.sizes(), " and ", b.sizes(), " do not multiply");
  TORCH_CHECK(a.scalar_type() == b.scalar_type() &&
                  (a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble),
              "BatchedMatmul: needs float or double matrices of one type, got ", a.scalar_type(),
              " and ", b.scalar_type());
  TORCH_CHECK(a.is_cpu() && b.is_cpu(), "BatchedMatmul: needs CPU tensors");
  for (int64_t d :
       {a.size(1), a.size(2), b.size(2), a.stride(1), a.stride(2), b.stride(1), b.stride(2)}) {
    TORCH_CHECK(d <= INT_MAX, "BatchedMatmul: a dimension or stride exceeds BLAS's int");
  }
  at::Tensor c = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
  if (c.numel() == 0) return c;
  if (a.size(2) == 0) return c.zero_();
  const TransposedOperand a_t = AsTransposed(a), b_t = AsTransposed(b);
  if (a.scalar_type() == at::kFloat) {
    Multiply<float>(a_t, b_t, c);
  } else {
    Multiply<double>(a_t, b_t, c);
  }
  return c;
}

}  // namespace dpfleet::models::internal
