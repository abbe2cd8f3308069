"""prototype_pool on Triton: ``cga::pool_hard`` and ``cga::pool_soft``.

One class-masked reduction (``_tiles.masked_sums``: a ``tl.dot`` of the class-mask tile with an
x tile), then the tiny ``(B, K, C)`` division by the counts in torch. Reads x once.
Backward: ``cga_kernels/ops/pool.py`` (a scatter, or the fused update's soft backward).
"""

from __future__ import annotations

from .._math import divide_by_counts
from ._tiles import masked_sums


def pool_hard(x, labels, num_classes):
    sums, counts = masked_sums(x, num_classes, labels=labels)
    return divide_by_counts(sums, counts).to(x.dtype), counts


def pool_soft(x, weights):
    sums, counts = masked_sums(x, weights.shape[1], weights=weights)
    return divide_by_counts(sums, counts).to(x.dtype), counts
