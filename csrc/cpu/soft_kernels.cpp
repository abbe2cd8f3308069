// Soft-mask (weight map) kernels. With dense weights w (B, K, N) pooling and scatter-back are
// batched matrix products, so they run on the BLAS bmm in the accumulation dtype:
//   sums = w x^T (B, K, C),   y = proto^T w (B, C, N).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "checks.h"

namespace cga {
namespace {

void check_weights(const at::Tensor& weights, const at::Tensor& x) {
  check_cpu_contiguous(weights, "weights", 3);
  TORCH_CHECK(weights.size(0) == x.size(0) && weights.size(2) == x.size(2), "weights must have shape (B, K, N) = (",
              x.size(0), ", K, ", x.size(2), "), got ", weights.sizes());
}

// Divides sums (B, K, C) by counts (B, K); an empty class gets a zero prototype.
at::Tensor mean_from_sums(const at::Tensor& sums, const at::Tensor& counts) {
  auto present = (counts > 0).unsqueeze(-1);
  auto safe = at::where(counts > 0, counts, at::ones_like(counts)).unsqueeze(-1);
  return at::where(present, sums / safe, at::zeros_like(sums));
}

std::tuple<at::Tensor, at::Tensor> pool_soft_acc(const at::Tensor& xf, const at::Tensor& wf) {
  auto counts = wf.sum(-1);
  auto proto = mean_from_sums(at::bmm(wf, xf.transpose(1, 2)), counts);
  return {proto, counts};
}

std::tuple<at::Tensor, at::Tensor> pool_soft(const at::Tensor& x, const at::Tensor& weights) {
  check_cpu_contiguous(x, "x", 3);
  check_weights(weights, x);
  const auto acc = acc_type_of(x.scalar_type());
  auto [proto, counts] = pool_soft_acc(x.to(acc), weights.to(acc));
  return {proto.to(x.scalar_type()), counts};
}

at::Tensor scatter_soft(const at::Tensor& proto, const at::Tensor& weights) {
  check_cpu_contiguous(proto, "proto", 3);
  check_cpu_contiguous(weights, "weights", 3);
  TORCH_CHECK(weights.size(0) == proto.size(0) && weights.size(1) == proto.size(1),
              "weights must have shape (B, K, N) with (B, K) = (", proto.size(0), ", ", proto.size(1), "), got ", weights.sizes());
  const auto acc = acc_type_of(proto.scalar_type());
  return at::bmm(proto.to(acc).transpose(1, 2), weights.to(acc)).to(proto.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> intra_update_soft(const at::Tensor& x, const at::Tensor& weights,
                                                                 const at::Tensor& active, bool residual) {
  check_cpu_contiguous(x, "x", 3);
  check_weights(weights, x);
  check_active(active, weights.size(1));
  const auto acc = acc_type_of(x.scalar_type());
  const auto xf = x.to(acc), wf = weights.to(acc);
  auto [proto, counts] = pool_soft_acc(xf, wf);
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
  check_weights(weights, x);
  check_active(active, weights.size(1));
  const auto acc = acc_type_of(x.scalar_type());
  const auto g = grad_y.to(acc), xf = x.to(acc), wf = weights.to(acc), pf = proto.to(acc), cf = counts.to(acc);
  const auto act = active.to(acc).unsqueeze(-1);  // (K, 1)
  auto total = grad_proto.to(acc) + act * at::bmm(wf, g.transpose(1, 2));
  auto h = mean_from_sums(total, cf);  // (B, K, C)
  auto grad_x = residual ? at::baddbmm(g, h.transpose(1, 2), wf) : at::bmm(h.transpose(1, 2), wf);
  auto grad_w = at::baddbmm(at::bmm(h, xf), pf * act, g);
  grad_w = grad_w - (pf * h).sum(-1, /*keepdim=*/true) + grad_counts.to(acc).unsqueeze(-1);
  return {grad_x.to(x.scalar_type()), grad_w.to(weights.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(cga, CPU, m) {
  m.impl("pool_soft", &pool_soft);
  m.impl("scatter_soft", &scatter_soft);
  m.impl("intra_update_soft", &intra_update_soft);
  m.impl("intra_update_soft_backward", &intra_update_soft_backward);
}

}  // namespace cga
