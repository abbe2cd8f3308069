// prototype_scatter on CPU: cga::scatter_hard (a gather proto[b, label, :] per row) and
// cga::scatter_soft (BLAS):  y[b, :, n] = sum_k w[b, k, n] proto[b, k, :].
// Backward (cga_kernels/ops/scatter.py): a class sum of grad_y (hard), two bmm (soft).
#include <torch/library.h>

#include "rows.h"

namespace cga {
namespace {

at::Tensor scatter_hard(const at::Tensor& proto, const at::Tensor& labels) {
  check_cpu_contiguous(proto, "proto", 3);
  check_labels(labels, proto.size(0), labels.size(1));
  const int64_t batch = proto.size(0), K = proto.size(1), channels = proto.size(2), n = labels.size(1);
  const auto rows = narrow_labels(labels, K, at::kFloat);  // validated: a label never indexes out of the table
  auto y = at::empty({batch, channels, n}, proto.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, proto.scalar_type(), "scatter_hard", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* pp = proto.data_ptr<scalar_t>();
    const int32_t* lab = rows.labels.data_ptr<int32_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    for_each_row<acc_t, scalar_t>(batch, channels, K, n, false, [&](int64_t b, int64_t c, auto& scratch) {
      for (int64_t k = 0; k < K; ++k) scratch.table[k + 1] = static_cast<acc_t>(pp[(b * K + k) * channels + c]);
      row_scatter<scalar_t, acc_t>(scratch.table.data(), lab + b * n, n, K, nullptr, yp + (b * channels + c) * n);
    });
  });
  return y;
}

at::Tensor scatter_soft(const at::Tensor& proto, const at::Tensor& weights) {
  check_cpu_contiguous(proto, "proto", 3);
  check_cpu_contiguous(weights, "weights", 3);
  TORCH_CHECK(weights.size(0) == proto.size(0) && weights.size(1) == proto.size(1),
              "weights must have shape (B, K, N) with (B, K) = (", proto.size(0), ", ", proto.size(1), "), got ", weights.sizes());
  const auto acc = acc_type_of(proto.scalar_type());
  return at::bmm(proto.to(acc).transpose(1, 2), weights.to(acc)).to(proto.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(cga, CPU, m) {
  m.impl("scatter_hard", &scatter_hard);
  m.impl("scatter_soft", &scatter_soft);
}

}  // namespace cga
