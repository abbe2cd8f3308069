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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CGA_X86_WIDE 1  // AVX2 and AVX-512 forms of the float32 row loops, chosen at run time
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace cga {

inline void check_cpu(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dims, got shape ", t.sizes());
}

inline void check_cpu_contiguous(const at::Tensor& t, const char* name, int64_t dim) {
  check_cpu(t, name, dim);
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

// Labels (B, N) narrowed to int32 in one validating pass (the row loops then compare 4 labels
// per vector instruction), with the voxel count per (b, k). -1 marks an ignored voxel.
struct LabelRows {
  at::Tensor labels;  // int32 (B, N)
  at::Tensor counts;  // (B, K) in the accumulation dtype
};

inline LabelRows narrow_labels(const at::Tensor& labels, int64_t num_classes, at::ScalarType acc) {
  TORCH_CHECK(acc == at::kFloat || acc == at::kDouble, "the accumulation dtype is float32 or float64, got ", acc);
  const int64_t batch = labels.size(0), n = labels.size(1);
  auto narrow = at::empty({batch, n}, labels.options().dtype(at::kInt));
  auto counts = at::empty({batch, num_classes}, labels.options().dtype(acc));  // written in acc: no second tensor
  const int64_t* lab = labels.data_ptr<int64_t>();
  int32_t* out = narrow.data_ptr<int32_t>();
  float* cnt_f = acc == at::kFloat ? counts.data_ptr<float>() : nullptr;
  double* cnt_d = acc == at::kDouble ? counts.data_ptr<double>() : nullptr;
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, n));  // small maps: no thread start
  at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> local(num_classes + 1);  // exact integer counts, converted once
    for (int64_t b = begin; b < end; ++b) {
      std::fill(local.begin(), local.end(), 0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = lab[b * n + i];
        TORCH_CHECK(k >= -1 && k < num_classes, "labels must be in [0, ", num_classes, ") or -1 (ignored), found ", k);
        out[b * n + i] = static_cast<int32_t>(k);
        ++local[k + 1];
      }
      for (int64_t k = 0; k < num_classes; ++k) {
        if (cnt_f != nullptr) cnt_f[b * num_classes + k] = static_cast<float>(local[k + 1]);
        if (cnt_d != nullptr) cnt_d[b * num_classes + k] = static_cast<double>(local[k + 1]);
      }
    }
  });
  return {narrow, counts};
}

// 16-byte vectors (GCC/Clang vector extensions, SSE2 on any x86-64; wider generic vectors are
// lowered badly without -mavx): 4 floats or 2 doubles, the integer vector of the same width for
// masks, and the int32 vector of W labels.
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  static constexpr int W = 4;
  typedef float V __attribute__((vector_size(16)));
  typedef int32_t M __attribute__((vector_size(16)));
  typedef int32_t L __attribute__((vector_size(16)));
};
template <>
struct Simd<double> {
  static constexpr int W = 2;
  typedef double V __attribute__((vector_size(16)));
  typedef int64_t M __attribute__((vector_size(16)));
  typedef int32_t L __attribute__((vector_size(8)));
};

template <typename S>
inline typename S::M label_vector(const int32_t* lab) {
  typename S::L l;
  std::memcpy(&l, lab, sizeof(l));
  return __builtin_convertvector(l, typename S::M);
}

// out[k] = sum of src[i] over the voxels i labelled k: K vector accumulators, each lane adding
// the values whose label matches (a compare and a bitwise and per class, no indexed stores).
// The lanes are added in a fixed order at the end, so the result is deterministic.
template <int K, typename T>
inline void row_class_sums_simd(const T* src, const int32_t* lab, int64_t n, T* out) {
  using S = Simd<T>;
  using V = typename S::V;
  using M = typename S::M;
  V acc[K] = {};
  int64_t i = 0;
  for (; i + S::W <= n; i += S::W) {
    V v;
    std::memcpy(&v, src + i, sizeof(V));
    const M m = label_vector<S>(lab + i);
    for (int k = 0; k < K; ++k) acc[k] += (V)((M)v & (m == k));
  }
  for (int k = 0; k < K; ++k) {
    T s = 0;
    for (int l = 0; l < S::W; ++l) s += acc[k][l];
    for (int64_t j = i; j < n; ++j) s += lab[j] == k ? src[j] : T(0);
    out[k] = s;
  }
}

// dst[i] = table[lab[i] + 1] (+ src[i]) with table[0] == 0 for ignored voxels: a select per class.
template <int K, typename T>
inline void row_scatter_simd(const T* table, const int32_t* lab, int64_t n, const T* src, T* dst) {
  using S = Simd<T>;
  using V = typename S::V;
  using M = typename S::M;
  V entry[K];
  for (int k = 0; k < K; ++k) entry[k] = V{} + table[k + 1];
  int64_t i = 0;
  for (; i + S::W <= n; i += S::W) {
    V y = {};
    if (src != nullptr) std::memcpy(&y, src + i, sizeof(V));
    const M m = label_vector<S>(lab + i);
    for (int k = 0; k < K; ++k) y += (V)((M)entry[k] & (m == k));
    std::memcpy(dst + i, &y, sizeof(V));
  }
  for (; i < n; ++i) dst[i] = table[lab[i] + 1] + (src != nullptr ? src[i] : T(0));
}

#ifdef CGA_X86_WIDE
// Wider forms of the float32 row loops for K <= 8. The library is built for baseline x86-64;
// these functions carry their own target and run only where the CPU reports the instruction
// set (checked once). The class sums keep K vector accumulators (a compare and a masked add
// per class); the scatter looks each voxel's entry up in a one-register table
// (vpermps: index = label, and label -1 lands on a slot that holds 0).
enum class Wide { none, avx2, avx512 };

inline Wide wide_isa() {
  static const Wide isa = __builtin_cpu_supports("avx512f") ? Wide::avx512
                          : __builtin_cpu_supports("avx2")  ? Wide::avx2
                                                            : Wide::none;
  return isa;
}

// Sum of the 8 (16) lanes in a fixed order, then the tail of the row: deterministic.
template <int K>
inline void finish_class_sums(const float* lanes, int width, const float* src, const int32_t* lab, int64_t i,
                              int64_t n, float* out) {
  for (int k = 0; k < K; ++k) {
    float s = 0;
    for (int l = 0; l < width; ++l) s += lanes[k * width + l];
    for (int64_t j = i; j < n; ++j) s += lab[j] == k ? src[j] : 0.f;
    out[k] = s;
  }
}

template <int K>
__attribute__((target("avx2"))) void row_class_sums_avx2(const float* src, const int32_t* lab, int64_t n, float* out) {
  __m256 acc[K];
  for (int k = 0; k < K; ++k) acc[k] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(src + i);
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lab + i));
    for (int k = 0; k < K; ++k) {
      const __m256 hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(l, _mm256_set1_epi32(k)));
      acc[k] = _mm256_add_ps(acc[k], _mm256_and_ps(v, hit));
    }
  }
  alignas(32) float lanes[K * 8];
  for (int k = 0; k < K; ++k) _mm256_store_ps(lanes + k * 8, acc[k]);
  finish_class_sums<K>(lanes, 8, src, lab, i, n, out);
}

template <int K>
__attribute__((target("avx512f"))) void row_class_sums_avx512(const float* src, const int32_t* lab, int64_t n,
                                                              float* out) {
  __m512 acc[K];
  for (int k = 0; k < K; ++k) acc[k] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(src + i);
    const __m512i l = _mm512_loadu_si512(lab + i);
    for (int k = 0; k < K; ++k) acc[k] = _mm512_mask_add_ps(acc[k], _mm512_cmpeq_epi32_mask(l, _mm512_set1_epi32(k)), acc[k], v);
  }
  alignas(64) float lanes[K * 16];
  for (int k = 0; k < K; ++k) _mm512_store_ps(lanes + k * 16, acc[k]);
  finish_class_sums<K>(lanes, 16, src, lab, i, n, out);
}

// dst[i] = table[lab[i] + 1] (+ src[i]) (table[0] == 0): entries[k] = table[k + 1] and the
// slot that label -1 selects (7, or 15: the low bits of -1) holds 0; K == 8 masks -1 instead.
template <int K>
__attribute__((target("avx2"))) void row_scatter_avx2(const float* table, const int32_t* lab, int64_t n, const float* src,
                                                      float* dst) {
  alignas(32) float e[8] = {};
  for (int k = 0; k < K; ++k) e[k] = table[k + 1];
  const __m256 entries = _mm256_load_ps(e);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lab + i));
    __m256 y = _mm256_permutevar8x32_ps(entries, l);
    if constexpr (K == 8) y = _mm256_and_ps(y, _mm256_castsi256_ps(_mm256_cmpgt_epi32(l, _mm256_set1_epi32(-1))));
    if (src != nullptr) y = _mm256_add_ps(_mm256_loadu_ps(src + i), y);
    _mm256_storeu_ps(dst + i, y);
  }
  for (; i < n; ++i) dst[i] = (src != nullptr ? src[i] : 0.f) + table[lab[i] + 1];
}

template <int K>
__attribute__((target("avx512f"))) void row_scatter_avx512(const float* table, const int32_t* lab, int64_t n,
                                                          const float* src, float* dst) {
  alignas(64) float e[16] = {};
  for (int k = 0; k < K; ++k) e[k] = table[k + 1];
  const __m512 entries = _mm512_load_ps(e);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 y = _mm512_permutexvar_ps(_mm512_loadu_si512(lab + i), entries);
    if (src != nullptr) y = _mm512_add_ps(_mm512_loadu_ps(src + i), y);
    _mm512_storeu_ps(dst + i, y);
  }
  for (; i < n; ++i) dst[i] = (src != nullptr ? src[i] : 0.f) + table[lab[i] + 1];
}
#endif

constexpr int64_t kLanes = 4;  // independent accumulators per class break the add chain

// The scalar row sums (half/bfloat16 inputs, or more than 8 classes); slot 0 of
// `lanes` absorbs label -1.
template <typename scalar_t, typename acc_t>
void row_class_sums_scalar(const scalar_t* src, const int32_t* lab, int64_t n, int64_t num_classes, acc_t* lanes, acc_t* out) {
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

// Calls fn(std::integral_constant<int, K>()) for K in 1..8; false for larger K.
template <typename Fn>
inline bool with_static_classes(int64_t num_classes, const Fn& fn) {
  switch (num_classes) {
    case 1: fn(std::integral_constant<int, 1>()); return true;
    case 2: fn(std::integral_constant<int, 2>()); return true;
    case 3: fn(std::integral_constant<int, 3>()); return true;
    case 4: fn(std::integral_constant<int, 4>()); return true;
    case 5: fn(std::integral_constant<int, 5>()); return true;
    case 6: fn(std::integral_constant<int, 6>()); return true;
    case 7: fn(std::integral_constant<int, 7>()); return true;
    case 8: fn(std::integral_constant<int, 8>()); return true;
    default: return false;
  }
}

// out[k] = sum of src[i] over the voxels i labelled k (label -1 belongs to no class).
template <typename scalar_t, typename acc_t>
void row_class_sums(const scalar_t* src, const int32_t* lab, int64_t n, int64_t num_classes, acc_t* lanes, acc_t* out) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
#ifdef CGA_X86_WIDE
    if constexpr (std::is_same_v<scalar_t, float>) {
      const Wide isa = wide_isa();
      if (isa != Wide::none && with_static_classes(num_classes, [&](auto k) {
            constexpr int K = decltype(k)::value;
            isa == Wide::avx512 ? row_class_sums_avx512<K>(src, lab, n, out) : row_class_sums_avx2<K>(src, lab, n, out);
          }))
        return;
    }
#endif
    if (with_static_classes(num_classes, [&](auto k) { row_class_sums_simd<decltype(k)::value>(src, lab, n, out); })) return;
  }
  row_class_sums_scalar(src, lab, n, num_classes, lanes, out);
}

// dst[i] = table[lab[i] + 1] (+ src[i]); table[0] == 0 is the value of ignored voxels.
template <typename scalar_t, typename acc_t>
void row_scatter(const acc_t* table, const int32_t* lab, int64_t n, int64_t num_classes, const scalar_t* src, scalar_t* dst) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
#ifdef CGA_X86_WIDE
    if constexpr (std::is_same_v<scalar_t, float>) {
      const Wide isa = wide_isa();
      if (isa != Wide::none && with_static_classes(num_classes, [&](auto k) {
            constexpr int K = decltype(k)::value;
            isa == Wide::avx512 ? row_scatter_avx512<K>(table, lab, n, src, dst) : row_scatter_avx2<K>(table, lab, n, src, dst);
          }))
        return;
    }
#endif
    if (with_static_classes(num_classes, [&](auto k) { row_scatter_simd<decltype(k)::value>(table, lab, n, src, dst); })) return;
  }
  if (src != nullptr) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(table[lab[i] + 1] + static_cast<acc_t>(src[i]));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(table[lab[i] + 1]);
  }
}

// Per-thread scratch of the row loops: class lanes, class sums, the table of the scatter
// (slot 0 = ignored voxels, always 0) and, for a source whose rows are not contiguous, a row.
template <typename acc_t, typename scalar_t>
struct RowScratch {
  std::vector<acc_t> lanes, sums, table;
  std::vector<scalar_t> row;
  RowScratch(int64_t num_classes, int64_t n, bool strided)
      : lanes(kLanes * (num_classes + 1)), sums(num_classes), table(num_classes + 1, acc_t(0)), row(strided ? n : 0) {}
};

// Runs body(b, c, scratch) over the B*C rows; each row is owned by one thread (deterministic).
template <typename acc_t, typename scalar_t, typename Body>
void for_each_row(int64_t batch, int64_t channels, int64_t num_classes, int64_t n, bool strided, const Body& body) {
  at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
    RowScratch<acc_t, scalar_t> scratch(num_classes, n, strided);
    for (int64_t r = begin; r < end; ++r) body(r / channels, r % channels, scratch);
  });
}

// Row (b, c) of a (B, C, N) tensor with any strides: a pointer into it when its elements are
// adjacent, else a copy in `row` (for example the broadcast gradient of a sum, stride 0).
template <typename scalar_t>
const scalar_t* row_of(const at::Tensor& t, const scalar_t* base, int64_t b, int64_t c, std::vector<scalar_t>& row) {
  const scalar_t* start = base + b * t.stride(0) + c * t.stride(1);
  const int64_t step = t.stride(2), n = t.size(2);
  if (step == 1) return start;
  if (step == 0) {
    std::fill(row.begin(), row.end(), *start);
  } else {
    for (int64_t i = 0; i < n; ++i) row[i] = start[i * step];
  }
  return row.data();
}

}  // namespace cga
