// Argument checks shared by the CPU kernels. The Python front end validates user input with
// friendlier messages; these guard memory safety when the ops are called directly.
#pragma once
#include <ATen/ATen.h>

namespace cga {

inline void check_cpu_contiguous(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dims, got shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

inline void check_labels(const at::Tensor& labels, int64_t batch, int64_t n) {
  check_cpu_contiguous(labels, "labels", 2);
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK(labels.size(0) == batch && labels.size(1) == n, "labels must have shape (B, N) = (", batch, ", ", n,
              "), got ", labels.sizes());
}

inline void check_active(const at::Tensor& active, int64_t k) {
  TORCH_CHECK(active.scalar_type() == at::kBool && active.dim() == 1 && active.size(0) == k,
              "active must be a bool tensor of shape (K,) = (", k, "), got ", active.scalar_type(), " ", active.sizes());
}

// float32 for half/bfloat16/float32, float64 for float64: the dtype of counts.
inline at::ScalarType acc_type_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

}  // namespace cga
