// Helpers shared by the CPU kernels of csrc/cpu/<op>.cpp: argument checks, the accumulation
// dtype, divide-by-count-or-zero, and the (b, c)-row helpers of the hard-mask kernels.
//
// The op schemas are defined in Python (cga_kernels/ops/<op>.py); each .cpp file only registers
// its CPU implementations with TORCH_LIBRARY_IMPL(cga, CPU, m). The Python front validates user
// input with friendlier messages; the checks here guard memory safety for direct calls.
//
// Hard-mask work is split over (b, c) rows of x (B, C, N): a row is read once to sum its values
// per class and, for the fused update, read again right away (still in cache) to write the
// output row. Each row is owned by one thread, so results are deterministic.
#pragma once
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

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

inline void check_weights(const at::Tensor& weights, int64_t batch, int64_t n) {
  check_cpu_contiguous(weights, "weights", 3);
  TORCH_CHECK(weights.size(0) == batch && weights.size(2) == n, "weights must have shape (B, K, N) = (", batch, ", K, ", n,
              "), got ", weights.sizes());
}

// float32 for half/bfloat16/float32, float64 for float64: the dtype of counts
// (the same rule as cga_kernels._math.acc_dtype).
inline at::ScalarType acc_type_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Divide by a class count, 0 for an empty class (never NaN); scalar and (B, K, C) / (B, K) forms.
template <typename acc_t>
inline acc_t safe_div(acc_t num, acc_t den) { return den > 0 ? num / den : acc_t(0); }

inline at::Tensor divide_by_counts(const at::Tensor& sums, const at::Tensor& counts) {
  auto present = (counts > 0).unsqueeze(-1);
  auto safe = at::where(counts > 0, counts, at::ones_like(counts)).unsqueeze(-1);
  return at::where(present, sums / safe, at::zeros_like(sums));
}

// Soft pooling in the accumulation dtype: xf (B, C, N), wf (B, K, N) -> (proto (B, K, C), counts (B, K)).
inline std::tuple<at::Tensor, at::Tensor> soft_class_means(const at::Tensor& xf, const at::Tensor& wf) {
  auto counts = wf.sum(-1);
  return {divide_by_counts(at::bmm(wf, xf.transpose(1, 2)), counts), counts};
}

constexpr int64_t kLanes = 4;  // independent accumulators per class break the add chain

// Voxel count per (b, k) of labels (B, N); -1 marks an ignored voxel. Validates the range.
inline at::Tensor count_labels(const at::Tensor& labels, int64_t num_classes, at::ScalarType acc) {
  const int64_t batch = labels.size(0), n = labels.size(1);
  auto counts = at::zeros({batch, num_classes}, labels.options().dtype(at::kLong));
  const int64_t* lab = labels.data_ptr<int64_t>();
  int64_t* cnt = counts.data_ptr<int64_t>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = lab[b * n + i];
        TORCH_CHECK(k >= -1 && k < num_classes, "labels must be in [0, ", num_classes, ") or -1 (ignored), found ", k);
        if (k >= 0) ++cnt[b * num_classes + k];
      }
    }
  });
  return counts.to(acc);
}

// out[k] = sum of src[i] over the voxels i labelled k (slot 0 of `lanes` absorbs label -1).
template <typename scalar_t, typename acc_t>
void row_class_sums(const scalar_t* src, const int64_t* lab, int64_t n, int64_t num_classes, acc_t* lanes, acc_t* out) {
  const int64_t stride = num_classes + 1;
  std::fill(lanes, lanes + kLanes * stride, acc_t(0));
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lanes[l * stride + lab[i + l] + 1] += static_cast<acc_t>(src[i + l]);
  }
  for (; i < n; ++i) lanes[lab[i] + 1] += static_cast<acc_t>(src[i]);
  for (int64_t k = 0; k < num_classes; ++k) {
    acc_t s = 0;
    for (int64_t l = 0; l < kLanes; ++l) s += lanes[l * stride + k + 1];
    out[k] = s;
  }
}

// dst[i] = table[lab[i] + 1] (+ src[i]); table[0] == 0 is the value of ignored voxels.
template <typename scalar_t, typename acc_t>
void row_scatter(const acc_t* table, const int64_t* lab, int64_t n, const scalar_t* src, scalar_t* dst) {
  if (src != nullptr) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(table[lab[i] + 1] + static_cast<acc_t>(src[i]));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(table[lab[i] + 1]);
  }
}

// Runs body(b, c, lanes, sums, table) over the B*C rows with per-thread scratch buffers.
template <typename acc_t, typename Body>
void for_each_row(int64_t batch, int64_t channels, int64_t num_classes, const Body& body) {
  at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> lanes(kLanes * (num_classes + 1)), sums(num_classes), table(num_classes + 1, acc_t(0));
    for (int64_t r = begin; r < end; ++r) body(r / channels, r % channels, lanes.data(), sums.data(), table.data());
  });
}

}  // namespace cga
