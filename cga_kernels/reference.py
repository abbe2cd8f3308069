"""Pure-PyTorch reference of every ``cga_kernels`` operator.

This module is the oracle of the tests and the readable statement of the operator contract
(DESIGN.md section 2). It is never used as a silent fallback for the compiled kernels.

Shapes (``N = prod(S)``, any number of spatial dims ``S``):

- ``x``: features ``(B, C, *S)``, floating point;
- hard mask: integer labels ``(B, *S)`` in ``[0, K)`` (or ``ignore_index``), needs ``num_classes``;
- soft mask: non-negative floating weights ``(B, K, *S)``;
- ``proto``: prototypes ``(B, K, C)``; ``counts``: class weights ``(B, K)``.

Half-precision inputs are computed in float32 and returned in the input dtype; ``counts`` is
returned in the accumulation dtype (float32 for float16/bfloat16/float32, float64 for
float64) because a voxel count overflows float16 beyond 65504 voxels.
"""

from __future__ import annotations

import torch

from ._math import acc_dtype, divide_by_counts, inter_class_loss_with, safe_sqrt
from ._validate import MaskSpec, check_proto_counts, parse_mask

__all__ = [
    "prototype_pool",
    "prototype_scatter",
    "intra_class_update",
    "prototype_distances",
    "inter_class_loss",
]


def _weights(spec: MaskSpec, dtype: torch.dtype) -> torch.Tensor:
    """Dense class weights ``(B, K, N)`` of a parsed mask (one-hot for hard masks)."""
    if spec.hard:
        labels = spec.labels  # (B, N), -1 = ignored
        onehot = torch.zeros(labels.shape[0], spec.num_classes + 1, labels.shape[1], dtype=dtype, device=labels.device)
        onehot.scatter_(1, (labels + 1).unsqueeze(1), 1.0)  # slot 0 collects ignored voxels
        return onehot[:, 1:]
    return spec.weights.to(dtype)


def _pool(xf: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``xf (B, C, N)``, ``w (B, K, N)`` in the accumulation dtype -> proto (B,K,C), counts (B,K)."""
    counts = w.sum(-1)
    sums = torch.bmm(w, xf.transpose(1, 2))
    proto = divide_by_counts(sums, counts)
    return proto, counts


def prototype_pool(x, mask, num_classes=None, ignore_index=None):
    """Masked average pooling: ``proto[b,k] = sum_n w[b,k,n] x[b,:,n] / counts[b,k]``.

    Returns ``(proto (B, K, C) in x.dtype, counts (B, K))``; an empty class gets a zero prototype.
    """
    spec = parse_mask(x, mask, num_classes, ignore_index)
    acc = acc_dtype(x.dtype)
    xf = x.reshape(x.shape[0], x.shape[1], -1).to(acc)
    proto, counts = _pool(xf, _weights(spec, acc))
    return proto.to(x.dtype), counts


def prototype_scatter(proto, mask, ignore_index=None):
    """Map prototypes back to voxels: ``y[b,:,n] = sum_k w[b,k,n] proto[b,k,:]``.

    ``proto`` is ``(B, K, C)``; returns ``(B, C, *S)`` in ``proto.dtype``. Ignored voxels get 0.
    """
    spec = parse_mask(None, mask, None, ignore_index, proto=proto)
    acc = acc_dtype(proto.dtype)
    w = _weights(spec, acc)
    y = torch.bmm(proto.to(acc).transpose(1, 2), w)
    return y.reshape(proto.shape[0], proto.shape[2], *spec.spatial_shape).to(proto.dtype)


def intra_class_update(x, mask, num_classes=None, residual=True, classes=None, ignore_index=None):
    """Intra-class update (paper Eq. 7-8): ``y = x + scatter(pool(x, mask), mask)``.

    ``classes`` (iterable of class indices) restricts the scatter to those classes; the
    prototypes and counts of all K classes are still returned. ``residual=False`` drops ``x``.
    Returns ``(y (B, C, *S) in x.dtype, proto (B, K, C) in x.dtype, counts (B, K))``.
    """
    spec = parse_mask(x, mask, num_classes, ignore_index, classes=classes)
    acc = acc_dtype(x.dtype)
    xf = x.reshape(x.shape[0], x.shape[1], -1).to(acc)
    w = _weights(spec, acc)
    proto, counts = _pool(xf, w)
    active = spec.active.to(acc).view(1, -1, 1)
    y = torch.bmm(proto.transpose(1, 2), w * active)
    if residual:
        y = y + xf
    return y.reshape(x.shape).to(x.dtype), proto.to(x.dtype), counts


def _pair_distances(proto: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Distances ``(B, K, K)`` from direct differences; 0 where either class is not present."""
    diff = proto.unsqueeze(2) - proto.unsqueeze(1)  # (B, K, K, C)
    both = present.unsqueeze(2) & present.unsqueeze(1)
    dist = safe_sqrt(diff.pow(2).sum(-1))
    return torch.where(both, dist, torch.zeros_like(dist))


def prototype_distances(proto, counts):
    """Pairwise prototype distances ``(B, K, K)``; 0 where either class has ``counts == 0``."""
    check_proto_counts(proto, counts)
    return _pair_distances(proto.to(acc_dtype(proto.dtype)), counts > 0).to(proto.dtype)


def inter_class_loss(proto, counts, form="paper"):
    """Inter-class distance loss (scalar, accumulation dtype); see ``_math.inter_class_loss_with``."""
    check_proto_counts(proto, counts)
    return inter_class_loss_with(_pair_distances, proto, counts, form)
