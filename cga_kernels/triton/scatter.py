"""prototype_scatter on Triton: ``cga::scatter_hard`` and ``cga::scatter_soft``.

One class-masked broadcast (``_tiles.masked_broadcast``: a ``tl.dot`` of the prototype table
with the class-mask tile). Writes y once. Backward: ``cga_kernels/ops/scatter.py``.
"""

from __future__ import annotations

from .._math import acc_dtype
from ._tiles import masked_broadcast


def scatter_hard(proto, labels):
    return masked_broadcast(proto.to(acc_dtype(proto.dtype)).contiguous(), labels.shape[1], proto.dtype, labels=labels)


def scatter_soft(proto, weights):
    return masked_broadcast(
        proto.to(acc_dtype(proto.dtype)).contiguous(), weights.shape[2], proto.dtype, weights=weights
    )
