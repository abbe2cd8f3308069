"""The op registry: one row per op, the one list of the ops of ``cga_kernels``.

A row binds an op's name to all of its pieces:

- ``name``: the stem of its files: ``csrc/cpu/<name>.cpp`` (its CPU kernels, which the
  compiled library registers under the low-level op names), ``cga_kernels/ops/<name>.py``
  (everything else in the row), ``cga_kernels/triton/<name>.py`` (one Triton launcher per
  low-level op, named as the op) and ``tests/kernels/test_<name>.py``;
- ``public``: its public functions, written against ``cga_kernels._binding.Kernels``;
- ``low_level``: its low-level ``cga::`` ops, name -> ``LowLevelOp`` (schema, fake kernel,
  autograd formula, ONNX translation, FLOP count, AOT example);
- ``flop_formulas``: the FLOP formulas of its public functions (``cga_kernels.flops``).

Everything else is derived from ``OPS``: the dispatcher registrations (``cga_kernels._library``),
the public functions and ``__all__`` (``cga_kernels``, ``cga_kernels.triton_ops``), the Triton
launchers (``cga_kernels.triton.KERNELS``), the ONNX translation table, the FlopCounterMode
mapping and the launches of the AOT check. ``tests/kernels/test_registry.py`` fails when a row
lacks a piece.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ._lowlevel import LowLevelOp
from .ops import distances, intra_update, pool, scatter


@dataclass(frozen=True)
class Op:
    """One op of the registry (see the module docstring for what each field binds)."""

    name: str
    public: tuple[Callable, ...]
    low_level: dict[str, LowLevelOp]
    flop_formulas: tuple[Callable, ...]

    @property
    def cpu_source(self) -> str:
        """The C++ file, relative to the repository, that registers this op's CPU kernels."""
        return f"csrc/cpu/{self.name}.cpp"

    def triton_kernels(self) -> dict[str, Callable]:
        """``{low-level op name: Triton launcher}`` from ``cga_kernels/triton/<name>.py`` (imports triton)."""
        module = importlib.import_module(f"cga_kernels.triton.{self.name}")
        return {low: getattr(module, low) for low in self.low_level}


OPS = (
    Op("pool", (pool.prototype_pool,), pool.LOW_LEVEL, (pool.prototype_pool_flops,)),
    Op("scatter", (scatter.prototype_scatter,), scatter.LOW_LEVEL, (scatter.prototype_scatter_flops,)),
    Op(
        "intra_update",
        (intra_update.intra_class_update,),
        intra_update.LOW_LEVEL,
        (intra_update.intra_class_update_flops,),
    ),
    Op(
        "distances",
        (distances.prototype_distances, distances.inter_class_loss),
        distances.LOW_LEVEL,
        (distances.prototype_distances_flops,),
    ),
)


def low_level_ops() -> dict[str, LowLevelOp]:
    """Every low-level op of every row, by name."""
    return {name: low for row in OPS for name, low in row.low_level.items()}


def public_functions() -> tuple[Callable, ...]:
    """Every public function of every row, in row order (written against ``Kernels``)."""
    return tuple(fn for row in OPS for fn in row.public)
