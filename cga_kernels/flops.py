"""One FLOP formula per operator: the single source for the model card and the benchmarks.

Convention: an operator costs the floating-point operations of its mathematical statement
with dense class weights ``w (B, K, N)`` (the one-hot of hard labels), counting the
matrix products as ``torch.utils.flop_counter.FlopCounterMode`` counts them on
``cga_kernels.reference`` (``2 * M * N * K`` for an ``(M, K) @ (K, N)`` product: one multiply
and one add per multiply-add), plus the elementwise work that is part of the operator's
output (the residual add, the differences of the distances). Hence, with ``N = prod(S)``:

- ``prototype_pool``: ``w x^T`` -> ``2 B K C N``;
- ``prototype_scatter``: ``proto^T w`` -> ``2 B K C N``;
- ``intra_class_update``: pool + scatter + residual -> ``4 B K C N (+ B C N)``;
- ``prototype_distances``: a subtract, multiply and add per channel of every ordered pair
  -> ``3 B K^2 C``.

Why this one: it is a property of the operator, not of a kernel, so the same number divides
every implementation's time (the one-hot reference, ``scatter_add_`` + ``gather``, our
kernels), hard and soft masks alike, which is what a FLOP/s comparison needs; and it agrees
with what FlopCounterMode reports for the rest of a network built from dense matrix products
(the model card's convolutions), so the totals add up. It is *not* what the hard-mask kernels
execute: they never multiply by a one-hot weight. Per forward call they do ``B C N`` adds
(class sums) + ``B K C`` divides (means) + ``B C N`` residual adds, i.e. about
``2 B C N``, ``2 K`` times fewer; their speed is bounded by memory traffic (DESIGN.md
section 5), not arithmetic. The paper's "multiply-adds" are ``flops / 2``.

The counts ``sum_n w`` (``B K N`` adds) and the divisions by the counts (``B K C``) are left
out, as FlopCounterMode leaves out reductions and elementwise ops; they are below 1/(2C) and
1/N of the total.
"""

from __future__ import annotations


def prototype_pool_flops(*, batch: int, classes: int, channels: int, voxels: int) -> int:
    """``2 B K C N``: the product ``w (B, K, N) @ x^T (B, N, C)``."""
    return 2 * batch * classes * channels * voxels


def prototype_scatter_flops(*, batch: int, classes: int, channels: int, voxels: int) -> int:
    """``2 B K C N``: the product ``proto^T (B, C, K) @ w (B, K, N)``."""
    return 2 * batch * classes * channels * voxels


def intra_class_update_flops(*, batch: int, classes: int, channels: int, voxels: int, residual: bool = True) -> int:
    """``4 B K C N + B C N``: pool, scatter and (with ``residual``) the add of ``x``."""
    shape = dict(batch=batch, classes=classes, channels=channels, voxels=voxels)
    residual_adds = batch * channels * voxels if residual else 0
    return prototype_pool_flops(**shape) + prototype_scatter_flops(**shape) + residual_adds


def prototype_distances_flops(*, batch: int, classes: int, channels: int) -> int:
    """``3 B K^2 C``: subtract, square and sum over channels for each ordered pair of classes."""
    return 3 * batch * classes * classes * channels


def _shape(batch_channels_voxels, classes):
    batch, channels, voxels = batch_channels_voxels
    return dict(batch=batch, classes=classes, channels=channels, voxels=voxels)


def flop_counter_mapping() -> dict:
    """``{torch.ops.cga.<op>: formula}`` for ``FlopCounterMode(custom_mapping=...)``: the formulas
    above applied to the low-level forward ops' argument shapes (``x (B, C, N)``, labels
    ``(B, N)`` or weights ``(B, K, N)``, ``active (K,)``), hard and soft alike."""
    import torch

    ops = torch.ops.cga

    def update(x, mask, active, residual, **_):
        return intra_class_update_flops(**_shape(x, active[0]), residual=residual)

    def scatter(proto, mask, **_):
        return prototype_scatter_flops(**_shape((proto[0], proto[2], mask[-1]), proto[1]))

    return {
        ops.pool_hard: lambda x, labels, num_classes, **_: prototype_pool_flops(**_shape(x, num_classes)),
        ops.pool_soft: lambda x, weights, **_: prototype_pool_flops(**_shape(x, weights[1])),
        ops.scatter_hard: scatter,
        ops.scatter_soft: scatter,
        ops.intra_update_hard: update,
        ops.intra_update_soft: update,
        ops.pair_distances: lambda proto, present, **_: prototype_distances_flops(
            batch=proto[0], classes=proto[1], channels=proto[2]
        ),
    }
