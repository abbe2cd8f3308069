// intra_class_update on CPU: cga::intra_update_hard / _soft and their backward ops.
//   y = x (if residual) + scatter(active * pool(x, mask), mask), returning proto and counts too.
// Hard masks: two passes per (b, c) row (sum per class, then write table[label] + x while the
// row is in cache); the backward is the same pattern over grad_y. Soft masks: BLAS products.
// Autograd wiring (which backward op serves which forward): cga_kernels/ops/intra_update.py.
#include <torch/library.h>

#include "rows.h"

namespace cga {
namespace {

// True when the class counts of a sample add up to its n voxels: no voxel is ignored.
template <typename acc_t>
bool all_labelled(const acc_t* counts, int64_t K, int64_t n) {
  acc_t total = 0;
  for (int64_t k = 0; k < K; ++k) total += counts[k];
  return total == static_cast<acc_t>(n);
}

// The two-pass row pattern of the fused update and of its backward: sum src (B, C, N, any
// strides) per class over a row, turn each class sum into a table entry with
// entry(b, c, k, sum), then write dst = table[label] (+ src) while the row is still in cache.
// A row of one repeated value (stride 0 over N: the broadcast gradient of a sum) in a sample
// without ignored voxels is not read: its class sums are value * count, and the residual is
// folded into the table entries.
template <typename scalar_t, typename acc_t, typename Entry>
void sum_then_scatter(const at::Tensor& src, const int32_t* lab, const acc_t* counts, int64_t K, bool residual,
                      scalar_t* dst, const Entry& entry) {
  const int64_t batch = src.size(0), channels = src.size(1), n = src.size(2);
  const scalar_t* base = src.data_ptr<scalar_t>();
  const bool constant_rows = src.stride(2) == 0;
  for_each_row<acc_t, scalar_t>(batch, channels, K, n, src.stride(2) != 1, [&](int64_t b, int64_t c, auto& scratch) {
    const scalar_t* row = base + b * src.stride(0) + c * src.stride(1);
    if (constant_rows && all_labelled(counts + b * K, K, n)) {
      const acc_t v = static_cast<acc_t>(*row), add = residual ? v : acc_t(0);
      for (int64_t k = 0; k < K; ++k) scratch.table[k + 1] = entry(b, c, k, v * counts[b * K + k]) + add;
      row_scatter<scalar_t, acc_t>(scratch.table.data(), lab + b * n, n, K, nullptr, dst + (b * channels + c) * n);
      return;
    }
    row = row_of(src, base, b, c, scratch.row);
    row_class_sums(row, lab + b * n, n, K, scratch.lanes.data(), scratch.sums.data());
    for (int64_t k = 0; k < K; ++k) scratch.table[k + 1] = entry(b, c, k, scratch.sums[k]);
    row_scatter<scalar_t, acc_t>(scratch.table.data(), lab + b * n, n, K, residual ? row : nullptr, dst + (b * channels + c) * n);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> intra_update_hard(const at::Tensor& x, const at::Tensor& labels,
                                                                 const at::Tensor& active, bool residual) {
  check_cpu_contiguous(x, "x", 3);
  check_labels(labels, x.size(0), x.size(2));
  const int64_t batch = x.size(0), channels = x.size(1), K = active.size(0);
  check_active(active, K);
  const auto acc = acc_type_of(x.scalar_type());
  const auto rows = narrow_labels(labels, K, acc);
  auto proto = at::empty({batch, K, channels}, x.options().dtype(acc));
  auto y = at::empty_like(x);
  const auto act = active.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "intra_update_hard", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* cnt = rows.counts.data_ptr<acc_t>();
    const bool* on = act.data_ptr<bool>();
    acc_t* pp = proto.data_ptr<acc_t>();
    sum_then_scatter<scalar_t, acc_t>(x, rows.labels.data_ptr<int32_t>(), cnt, K, residual, y.data_ptr<scalar_t>(),
                                      [&](int64_t b, int64_t c, int64_t k, acc_t sum) {
                                        const acc_t p = safe_div(sum, cnt[b * K + k]);
                                        pp[(b * K + k) * channels + c] = p;
                                        return on[k] ? p : acc_t(0);
                                      });
  });
  return {y, proto.to(x.scalar_type()), rows.counts};
}

// grad_x[:, i] = H[label_i] (+ grad_y[:, i]) with H_k = (grad_proto_k + active_k * sum_{label=k} grad_y) / counts_k.
// grad_y may have any strides (the broadcast gradient of a sum is read without being copied).
at::Tensor intra_update_hard_backward(const at::Tensor& grad_y, const at::Tensor& grad_proto, const at::Tensor& labels,
                                      const at::Tensor& active, const at::Tensor& counts, bool residual) {
  check_cpu(grad_y, "grad_y", 3);
  check_cpu(grad_proto, "grad_proto", 3);
  const int64_t batch = grad_y.size(0), channels = grad_y.size(1), n = grad_y.size(2), K = active.size(0);
  check_labels(labels, batch, n);
  check_active(active, K);
  TORCH_CHECK(grad_proto.size(0) == batch && grad_proto.size(1) == K && grad_proto.size(2) == channels,
              "grad_proto must have shape (B, K, C) = (", batch, ", ", K, ", ", channels, "), got ", grad_proto.sizes());
  const auto acc = acc_type_of(grad_y.scalar_type());
  const auto cnt_t = counts.to(acc).contiguous();
  const auto gp_t = grad_proto.to(acc).contiguous();
  TORCH_CHECK(cnt_t.numel() == batch * K, "counts must have shape (B, K)");
  const auto rows = narrow_labels(labels, K, acc);
  auto grad_x = at::empty(grad_y.sizes(), grad_y.options());
  const auto act = active.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_y.scalar_type(), "intra_update_hard_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t* cnt = cnt_t.data_ptr<acc_t>();
    const acc_t* gp = gp_t.data_ptr<acc_t>();
    const bool* on = act.data_ptr<bool>();
    sum_then_scatter<scalar_t, acc_t>(grad_y, rows.labels.data_ptr<int32_t>(), rows.counts.data_ptr<acc_t>(), K, residual, grad_x.data_ptr<scalar_t>(),
                                      [&](int64_t b, int64_t c, int64_t k, acc_t sum) {
                                        return safe_div(gp[(b * K + k) * channels + c] + (on[k] ? sum : acc_t(0)), cnt[b * K + k]);
                                      });
  });
  return grad_x;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> intra_update_soft(const at::Tensor& x, const at::Tensor& weights,
                                                                 const at::Tensor& active, bool residual) {
  check_cpu_contiguous(x, "x", 3);
  check_weights(weights, x.size(0), x.size(2));
  check_active(active, weights.size(1));
  const auto acc = acc_type_of(x.scalar_type());
  const auto xf = x.to(acc), wf = weights.to(acc);
  auto [proto, counts] = soft_class_means(xf, wf);
  auto scattered = (proto * active.to(acc).unsqueeze(-1)).transpose(1, 2);  // (B, C, K)
  auto y = residual ? at::baddbmm(xf, scattered, wf) : at::bmm(scattered, wf);
  return {y.to(x.scalar_type()), proto.to(x.scalar_type()), counts};
}

// G = grad_proto + active * (w g^T), H = G / counts;
// grad_x = H^T w (+ g);  grad_w = (active * proto) g + H x - <proto, H> + grad_counts.
std::tuple<at::Tensor, at::Tensor> intra_update_soft_backward(const at::Tensor& grad_y, const at::Tensor& grad_proto,
                                                              const at::Tensor& grad_counts, const at::Tensor& x,
                                                              const at::Tensor& weights, const at::Tensor& active,
                                                              const at::Tensor& proto, const at::Tensor& counts,
                                                              bool residual) {
  check_cpu_contiguous(grad_y, "grad_y", 3);
  check_cpu_contiguous(x, "x", 3);
  check_weights(weights, x.size(0), x.size(2));
  check_active(active, weights.size(1));
  const auto acc = acc_type_of(x.scalar_type());
  const auto g = grad_y.to(acc), xf = x.to(acc), wf = weights.to(acc), pf = proto.to(acc), cf = counts.to(acc);
  const auto act = active.to(acc).unsqueeze(-1);  // (K, 1)
  auto total = grad_proto.to(acc) + act * at::bmm(wf, g.transpose(1, 2));
  auto h = divide_by_counts(total, cf);  // (B, K, C)
  auto grad_x = residual ? at::baddbmm(g, h.transpose(1, 2), wf) : at::bmm(h.transpose(1, 2), wf);
  auto grad_w = at::baddbmm(at::bmm(h, xf), pf * act, g);
  grad_w = grad_w - (pf * h).sum(-1, /*keepdim=*/true) + grad_counts.to(acc).unsqueeze(-1);
  return {grad_x.to(x.scalar_type()), grad_w.to(weights.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(cga, CPU, m) {
  m.impl("intra_update_hard", &intra_update_hard);
  m.impl("intra_update_hard_backward", &intra_update_hard_backward);
  m.impl("intra_update_soft", &intra_update_soft);
  m.impl("intra_update_soft_backward", &intra_update_soft_backward);
}

}  // namespace cga
