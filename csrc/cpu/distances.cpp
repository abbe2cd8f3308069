// prototype_distances on CPU: cga::pair_distances and cga::pair_distances_backward.
// Pairwise Euclidean distances between the prototypes of present classes, from direct
// differences (no |a|^2 + |b|^2 - 2ab expansion, which cancels catastrophically in float32).
// The gradient at zero distance is defined as zero, so coincident prototypes stay finite.
#include <torch/library.h>

#include <cmath>

#include "rows.h"

namespace cga {
namespace {

at::Tensor pair_distances(const at::Tensor& proto, const at::Tensor& present) {
  check_cpu_contiguous(proto, "proto", 3);
  const int64_t batch = proto.size(0), K = proto.size(1), channels = proto.size(2);
  TORCH_CHECK(present.scalar_type() == at::kBool && present.dim() == 2 && present.size(0) == batch && present.size(1) == K,
              "present must be a bool tensor of shape (B, K) = (", batch, ", ", K, ")");
  const auto pres = present.contiguous();
  const auto acc = acc_type_of(proto.scalar_type());
  auto dist = at::zeros({batch, K, K}, proto.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, proto.scalar_type(), "pair_distances", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* p = proto.data_ptr<scalar_t>();
    const bool* on = pres.data_ptr<bool>();
    acc_t* d = dist.data_ptr<acc_t>();
    at::parallel_for(0, batch * K, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / K, i = r % K;
        if (!on[b * K + i]) continue;
        for (int64_t j = 0; j < K; ++j) {
          if (j == i || !on[b * K + j]) continue;
          acc_t sq = 0;
          for (int64_t c = 0; c < channels; ++c) {
            const acc_t diff = static_cast<acc_t>(p[(b * K + i) * channels + c]) - static_cast<acc_t>(p[(b * K + j) * channels + c]);
            sq += diff * diff;
          }
          d[(b * K + i) * K + j] = std::sqrt(sq);
        }
      }
    });
  });
  return dist.to(proto.scalar_type());
}

// grad_proto_i = sum_j (grad_ij + grad_ji) (p_i - p_j) / dist_ij over pairs with dist_ij > 0.
at::Tensor pair_distances_backward(const at::Tensor& grad, const at::Tensor& proto, const at::Tensor& dist) {
  check_cpu_contiguous(proto, "proto", 3);
  const int64_t batch = proto.size(0), K = proto.size(1), channels = proto.size(2);
  const auto acc = acc_type_of(proto.scalar_type());
  const auto g = grad.to(acc).contiguous(), dd = dist.to(acc).contiguous(), pf = proto.to(acc).contiguous();
  TORCH_CHECK(g.numel() == batch * K * K && dd.numel() == batch * K * K, "grad and dist must have shape (B, K, K)");
  auto out = at::zeros({batch, K, channels}, proto.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES(acc, "pair_distances_backward", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* dp = dd.data_ptr<scalar_t>();
    const scalar_t* p = pf.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch * K, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / K, i = r % K;
        for (int64_t j = 0; j < K; ++j) {
          const scalar_t dij = dp[(b * K + i) * K + j];
          if (!(dij > 0)) continue;
          const scalar_t scale = (gp[(b * K + i) * K + j] + gp[(b * K + j) * K + i]) / dij;
          for (int64_t c = 0; c < channels; ++c)
            o[r * channels + c] += scale * (p[r * channels + c] - p[(b * K + j) * channels + c]);
        }
      }
    });
  });
  return out.to(proto.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(cga, CPU, m) {
  m.impl("pair_distances", &pair_distances);
  m.impl("pair_distances_backward", &pair_distances_backward);
}

}  // namespace cga
