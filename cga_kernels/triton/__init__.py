"""Triton GPU kernels of the cga:: operators.

- ``register_cuda_kernels()`` makes them the CUDA implementation of the ``cga::`` ops, so CUDA
  tensors run Triton through the same dispatcher entries (autograd, fake, compile) as CPU.
- The ``cga_triton::`` custom ops have the ``cga::`` schemas (read from the dispatcher) and run
  the same kernels on any device: on CPU tensors under ``TRITON_INTERPRET=1`` (how they are
  tested without a GPU). ``cga_kernels.triton_ops`` is the public front bound to them.
"""

from __future__ import annotations

import torch

from .._autograd import register_autograd
from .._fake import register_fake
from . import distances, intra_update

OPS = {
    "pool_hard": intra_update.pool_hard,
    "pool_soft": intra_update.pool_soft,
    "scatter_hard": intra_update.scatter_hard,
    "scatter_soft": intra_update.scatter_soft,
    "intra_update_hard": intra_update.intra_update_hard,
    "intra_update_soft": intra_update.intra_update_soft,
    "intra_update_hard_backward": intra_update.intra_update_hard_backward,
    "intra_update_soft_backward": intra_update.intra_update_soft_backward,
    "pair_distances": distances.pair_distances,
    "pair_distances_backward": distances.pair_distances_backward,
}


def _schema(name: str) -> str:
    """The ``cga::name`` schema without its namespace and name: ``(Tensor x, ...) -> ...``."""
    full = str(getattr(torch.ops.cga, name).default._schema)
    return full[full.index("(") :]


def _define_triton_ops() -> None:
    for name, fn in OPS.items():
        torch.library.custom_op(f"cga_triton::{name}", fn, mutates_args=(), schema=_schema(name))
    register_fake("cga_triton")
    register_autograd("cga_triton")


_define_triton_ops()
_CUDA_LIB = None


def register_cuda_kernels() -> None:
    """Register the Triton launchers as the CUDA kernels of the ``cga::`` ops (idempotent)."""
    global _CUDA_LIB
    if _CUDA_LIB is not None:
        return
    _CUDA_LIB = torch.library.Library("cga", "IMPL")
    for name, fn in OPS.items():
        _CUDA_LIB.impl(name, fn, "CUDA")


def triton_status() -> str:
    if torch.cuda.is_available():
        return "triton"
    return "unavailable: no CUDA device (Triton kernels registered for CUDA; verified here only under TRITON_INTERPRET=1)"
