// Hard-mask (integer label) kernels: prototype pooling, scatter-back and the fused
// intra-class update with its backward. No one-hot tensor is ever materialised.
//
// Work is split over (b, c) rows of x (B, C, N): a row is read once to sum its values per
// class, and (for the fused update) read again right away, while it is still in cache, to
// write the output row. Each row is owned by one thread, so results are deterministic.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "checks.h"

namespace cga {
namespace {

constexpr int64_t kLanes = 4;  // independent accumulators per class break the add chain

// Voxel count per (b, k) of labels (B, N); -1 marks an ignored voxel. Validates the range.
at::Tensor count_labels(const at::Tensor& labels, int64_t num_classes, at::ScalarType acc) {
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

template <typename acc_t>
inline acc_t safe_div(acc_t num, acc_t den) { return den > 0 ? num / den : acc_t(0); }

// The two-pass row pattern of the fused update and of its backward: sum src per class over a
// row, turn each class sum into a table entry with entry(b, c, k, sum), then write
// dst = table[label] (+ src) while the row is still in cache.
template <typename scalar_t, typename acc_t, typename Entry>
void sum_then_scatter(const scalar_t* src, const int64_t* lab, int64_t batch, int64_t channels, int64_t n, int64_t K,
                      bool residual, scalar_t* dst, const Entry& entry) {
  for_each_row<acc_t>(batch, channels, K, [&](int64_t b, int64_t c, acc_t* lanes, acc_t* sums, acc_t* table) {
    const scalar_t* row = src + (b * channels + c) * n;
    row_class_sums(row, lab + b * n, n, K, lanes, sums);
    for (int64_t k = 0; k < K; ++k) table[k + 1] = entry(b, c, k, sums[k]);
    row_scatter<scalar_t, acc_t>(table, lab + b * n, n, residual ? row : nullptr, dst + (b * channels + c) * n);
  });
}

std::tuple<at::Tensor, at::Tensor> pool_hard(const at::Tensor& x, const at::Tensor& labels, int64_t num_classes) {
  check_cpu_contiguous(x, "x", 3);
  check_labels(labels, x.size(0), x.size(2));
  TORCH_CHECK(num_classes >= 1, "num_classes must be positive, got ", num_classes);
  const int64_t batch = x.size(0), channels = x.size(1), n = x.size(2), K = num_classes;
  const auto acc = acc_type_of(x.scalar_type());
  auto counts = count_labels(labels, K, acc);
  auto proto = at::empty({batch, K, channels}, x.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pool_hard", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const int64_t* lab = labels.data_ptr<int64_t>();
    const acc_t* cnt = counts.data_ptr<acc_t>();
    acc_t* pp = proto.data_ptr<acc_t>();
    for_each_row<acc_t>(batch, channels, K, [&](int64_t b, int64_t c, acc_t* lanes, acc_t* sums, acc_t*) {
      row_class_sums(xp + (b * channels + c) * n, lab + b * n, n, K, lanes, sums);
      for (int64_t k = 0; k < K; ++k) pp[(b * K + k) * channels + c] = safe_div(sums[k], cnt[b * K + k]);
    });
  });
  return {proto.to(x.scalar_type()), counts};
}

at::Tensor scatter_hard(const at::Tensor& proto, const at::Tensor& labels) {
  check_cpu_contiguous(proto, "proto", 3);
  check_labels(labels, proto.size(0), labels.size(1));
  const int64_t batch = proto.size(0), K = proto.size(1), channels = proto.size(2), n = labels.size(1);
  count_labels(labels, K, at::kFloat);  // range check only: an out-of-range label must never index the table
  auto y = at::empty({batch, channels, n}, proto.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, proto.scalar_type(), "scatter_hard", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* pp = proto.data_ptr<scalar_t>();
    const int64_t* lab = labels.data_ptr<int64_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    for_each_row<acc_t>(batch, channels, K, [&](int64_t b, int64_t c, acc_t*, acc_t*, acc_t* table) {
      for (int64_t k = 0; k < K; ++k) table[k + 1] = static_cast<acc_t>(pp[(b * K + k) * channels + c]);
      row_scatter<scalar_t, acc_t>(table, lab + b * n, n, nullptr, yp + (b * channels + c) * n);
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> intra_update_hard(const at::Tensor& x, const at::Tensor& labels,
                                                                 const at::Tensor& active, bool residual) {
  check_cpu_contiguous(x, "x", 3);
  check_labels(labels, x.size(0), x.size(2));
  const int64_t batch = x.size(0), channels = x.size(1), n = x.size(2), K = active.size(0);
  check_active(active, K);
  const auto acc = acc_type_of(x.scalar_type());
  auto counts = count_labels(labels, K, acc);
  auto proto = at::empty({batch, K, channels}, x.options().dtype(acc));
  auto y = at::empty_like(x);
  const auto act = active.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "intra_update_hard", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const int64_t* lab = labels.data_ptr<int64_t>();
    const acc_t* cnt = counts.data_ptr<acc_t>();
    const bool* on = act.data_ptr<bool>();
    acc_t* pp = proto.data_ptr<acc_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    sum_then_scatter<scalar_t, acc_t>(xp, lab, batch, channels, n, K, residual, yp, [&](int64_t b, int64_t c, int64_t k, acc_t sum) {
      const acc_t p = safe_div(sum, cnt[b * K + k]);
      pp[(b * K + k) * channels + c] = p;
      return on[k] ? p : acc_t(0);
    });
  });
  return {y, proto.to(x.scalar_type()), counts};
}

// grad_x[:, i] = H[label_i] (+ grad_y[:, i]) with H_k = (grad_proto_k + active_k * sum_{label=k} grad_y) / counts_k.
at::Tensor intra_update_hard_backward(const at::Tensor& grad_y, const at::Tensor& grad_proto, const at::Tensor& labels,
                                      const at::Tensor& active, const at::Tensor& counts, bool residual) {
  check_cpu_contiguous(grad_y, "grad_y", 3);
  check_cpu_contiguous(grad_proto, "grad_proto", 3);
  const int64_t batch = grad_y.size(0), channels = grad_y.size(1), n = grad_y.size(2), K = active.size(0);
  check_labels(labels, batch, n);
  check_active(active, K);
  TORCH_CHECK(grad_proto.size(0) == batch && grad_proto.size(1) == K && grad_proto.size(2) == channels,
              "grad_proto must have shape (B, K, C) = (", batch, ", ", K, ", ", channels, "), got ", grad_proto.sizes());
  const auto acc = acc_type_of(grad_y.scalar_type());
  const auto cnt_t = counts.to(acc).contiguous();
  const auto gp_t = grad_proto.to(acc).contiguous();
  TORCH_CHECK(cnt_t.numel() == batch * K, "counts must have shape (B, K)");
  count_labels(labels, K, acc);  // range check only
  auto grad_x = at::empty_like(grad_y);
  const auto act = active.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_y.scalar_type(), "intra_update_hard_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gy = grad_y.data_ptr<scalar_t>();
    const int64_t* lab = labels.data_ptr<int64_t>();
    const acc_t* cnt = cnt_t.data_ptr<acc_t>();
    const acc_t* gp = gp_t.data_ptr<acc_t>();
    const bool* on = act.data_ptr<bool>();
    scalar_t* gx = grad_x.data_ptr<scalar_t>();
    sum_then_scatter<scalar_t, acc_t>(gy, lab, batch, channels, n, K, residual, gx, [&](int64_t b, int64_t c, int64_t k, acc_t sum) {
      return safe_div(gp[(b * K + k) * channels + c] + (on[k] ? sum : acc_t(0)), cnt[b * K + k]);
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cga, CPU, m) {
  m.impl("pool_hard", &pool_hard);
  m.impl("scatter_hard", &scatter_hard);
  m.impl("intra_update_hard", &intra_update_hard);
  m.impl("intra_update_hard_backward", &intra_update_hard_backward);
}

}  // namespace cga
