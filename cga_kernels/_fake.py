"""Fake (meta) kernels of the low-level ops: output shapes and dtypes without data.

``register_fake(namespace)`` registers them for any namespace whose ops have the schemas of
``csrc/cga.cpp`` (``cga`` for the C++ library, ``cga_triton`` for the Triton custom ops).
"""

from __future__ import annotations

import torch

from ._math import acc_dtype


def _proto_counts(x: torch.Tensor, num_classes: int):
    batch, channels = x.shape[0], x.shape[1]
    return x.new_empty(batch, num_classes, channels), x.new_empty(batch, num_classes, dtype=acc_dtype(x.dtype))


def _pool_hard(x, labels, num_classes):
    return _proto_counts(x, num_classes)


def _pool_soft(x, weights):
    return _proto_counts(x, weights.shape[1])


def _scatter_hard(proto, labels):
    return proto.new_empty(proto.shape[0], proto.shape[2], labels.shape[1])


def _scatter_soft(proto, weights):
    return proto.new_empty(proto.shape[0], proto.shape[2], weights.shape[2])


def _intra_update(x, mask, active, residual):
    return (torch.empty_like(x, memory_format=torch.contiguous_format), *_proto_counts(x, active.shape[0]))


def _intra_update_hard_backward(grad_y, grad_proto, labels, active, counts, residual):
    return torch.empty_like(grad_y, memory_format=torch.contiguous_format)


def _intra_update_soft_backward(grad_y, grad_proto, grad_counts, x, weights, active, proto, counts, residual):
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(weights, memory_format=torch.contiguous_format)


def _pair_distances(proto, present):
    return proto.new_empty(proto.shape[0], proto.shape[1], proto.shape[1])


def _pair_distances_backward(grad, proto, dist):
    return torch.empty_like(proto, memory_format=torch.contiguous_format)


_FAKES = {
    "pool_hard": _pool_hard,
    "pool_soft": _pool_soft,
    "scatter_hard": _scatter_hard,
    "scatter_soft": _scatter_soft,
    "intra_update_hard": _intra_update,
    "intra_update_soft": _intra_update,
    "intra_update_hard_backward": _intra_update_hard_backward,
    "intra_update_soft_backward": _intra_update_soft_backward,
    "pair_distances": _pair_distances,
    "pair_distances_backward": _pair_distances_backward,
}


def register_fake(namespace: str) -> None:
    """Register the fake kernel of every low-level op in ``namespace``."""
    for name, fn in _FAKES.items():
        torch.library.register_fake(f"{namespace}::{name}", fn)
