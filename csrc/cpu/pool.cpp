// prototype_pool on CPU: cga::pool_hard (label rows, no one-hot) and cga::pool_soft (BLAS).
//   proto[b, k, :] = sum_n w[b, k, n] x[b, :, n] / counts[b, k],  counts[b, k] = sum_n w[b, k, n]
// Backward (cga_kernels/ops/pool.py): a scatter of grad_proto / counts (hard), the fused
// update's soft backward with no scatter path (soft).
#include <torch/library.h>

#include "rows.h"

namespace cga {
namespace {

std::tuple<at::Tensor, at::Tensor> pool_hard(const at::Tensor& x, const at::Tensor& labels, int64_t num_classes) {
  check_cpu_contiguous(x, "x", 3);
  check_labels(labels, x.size(0), x.size(2));
  TORCH_CHECK(num_classes >= 1, "num_classes must be positive, got ", num_classes);
  const int64_t batch = x.size(0), channels = x.size(1), n = x.size(2), K = num_classes;
  const auto acc = acc_type_of(x.scalar_type());
  const auto rows = narrow_labels(labels, K, acc);
  auto proto = at::empty({batch, K, channels}, x.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pool_hard", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const int32_t* lab = rows.labels.data_ptr<int32_t>();
    const acc_t* cnt = rows.counts.data_ptr<acc_t>();
    acc_t* pp = proto.data_ptr<acc_t>();
    for_each_row<acc_t, scalar_t>(batch, channels, K, n, false, [&](int64_t b, int64_t c, auto& scratch) {
      row_class_sums(xp + (b * channels + c) * n, lab + b * n, n, K, scratch.lanes.data(), scratch.sums.data());
      for (int64_t k = 0; k < K; ++k) pp[(b * K + k) * channels + c] = safe_div(scratch.sums[k], cnt[b * K + k]);
    });
  });
  return {proto.to(x.scalar_type()), rows.counts};
}

std::tuple<at::Tensor, at::Tensor> pool_soft(const at::Tensor& x, const at::Tensor& weights) {
  check_cpu_contiguous(x, "x", 3);
  check_weights(weights, x.size(0), x.size(2));
  const auto acc = acc_type_of(x.scalar_type());
  auto [proto, counts] = soft_class_means(x.to(acc), weights.to(acc));
  return {proto.to(x.scalar_type()), counts};
}

}  // namespace

TORCH_LIBRARY_IMPL(cga, CPU, m) {
  m.impl("pool_hard", &pool_hard);
  m.impl("pool_soft", &pool_soft);
}

}  // namespace cga
