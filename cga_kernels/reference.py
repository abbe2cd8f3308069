"""Pure-PyTorch reference of every ``cga_kernels`` operator.

This module is the oracle of the tests: each operator is stated with dense class weights
``w (B, K, N)`` (the one-hot of hard labels) and batched matrix products. It is never used as
a silent fallback for the compiled kernels. Each function carries the docstring (the
contract) of the public operator it checks, from ``cga_kernels/ops/<op>.py``.
"""

from __future__ import annotations

import torch

from ._contract import reference_of
from ._math import acc_dtype, divide_by_counts, inter_class_loss_with, safe_sqrt
from ._validate import MaskSpec, check_proto_counts, parse_mask
from .ops import distances, intra_update, pool, scatter


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


@reference_of(pool.prototype_pool)
def prototype_pool(x, mask, num_classes=None, ignore_index=None):
    spec = parse_mask(x, mask, num_classes=num_classes, ignore_index=ignore_index)
    acc = acc_dtype(x.dtype)
    xf = x.reshape(x.shape[0], x.shape[1], -1).to(acc)
    proto, counts = _pool(xf, _weights(spec, acc))
    return proto.to(x.dtype), counts


@reference_of(scatter.prototype_scatter)
def prototype_scatter(proto, mask, ignore_index=None):
    spec = parse_mask(None, mask, ignore_index=ignore_index, proto=proto)
    acc = acc_dtype(proto.dtype)
    w = _weights(spec, acc)
    y = torch.bmm(proto.to(acc).transpose(1, 2), w)
    return y.reshape(proto.shape[0], proto.shape[2], *spec.spatial_shape).to(proto.dtype)


@reference_of(intra_update.intra_class_update)
def intra_class_update(x, mask, num_classes=None, residual=True, classes=None, ignore_index=None):
    spec = parse_mask(x, mask, num_classes=num_classes, ignore_index=ignore_index, classes=classes)
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


@reference_of(distances.prototype_distances)
def prototype_distances(proto, counts):
    check_proto_counts(proto, counts)
    return _pair_distances(proto.to(acc_dtype(proto.dtype)), counts > 0).to(proto.dtype)


@reference_of(distances.inter_class_loss)
def inter_class_loss(proto, counts, form="paper"):
    check_proto_counts(proto, counts)
    return inter_class_loss_with(_pair_distances, proto, counts, form)
