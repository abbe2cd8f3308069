"""One FLOP formula per operator: the single source for the model card and the benchmarks.

Each formula lives beside its op (``cga_kernels/ops/<op>.py``) and is named in its registry
row (``cga_kernels.registry``); this module gives them all by name
(``cga_kernels.flops.prototype_pool_flops``, ...) and the ``FlopCounterMode`` mapping.

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
``2 B C N``, ``2 K`` times fewer; their speed is bounded by memory traffic, not
arithmetic. The paper's "multiply-adds" are ``flops / 2``.

The counts ``sum_n w`` (``B K N`` adds) and the divisions by the counts (``B K C``) are left
out, as FlopCounterMode leaves out reductions and elementwise ops; they are below 1/(2C) and
1/N of the total.
"""

from __future__ import annotations

from .registry import OPS, low_level_ops

FORMULAS = {formula.__name__: formula for row in OPS for formula in row.flop_formulas}
globals().update(FORMULAS)  # prototype_pool_flops, prototype_scatter_flops, ...
__all__ = [*FORMULAS, "flop_counter_mapping"]


def flop_counter_mapping() -> dict:
    """``{torch.ops.cga.<op>: formula}`` for ``FlopCounterMode(custom_mapping=...)``: the formulas
    of ``FORMULAS`` applied to each forward low-level op's argument shapes (``LowLevelOp.flops``: ``x (B, C, N)``,
    labels ``(B, N)`` or weights ``(B, K, N)``, ``active (K,)``), hard and soft alike."""
    import torch

    return {getattr(torch.ops.cga, name): low.flops for name, low in low_level_ops().items() if low.flops is not None}
