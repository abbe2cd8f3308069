"""Triton GPU kernels of the ``cga::`` ops, one module per op (same names as csrc/cpu/):
``pool.py``, ``scatter.py``, ``intra_update.py``, ``distances.py``; ``_tiles.py`` holds the
launch parameters and the class-masked tile kernels they share.

``KERNELS`` maps every low-level op name to its launcher. ``cga_kernels._library`` registers
them as the CUDA kernels of the ``cga::`` ops and as the ``cga_triton::`` ops, which run on
any device (on CPU tensors under ``TRITON_INTERPRET=1``, how they are tested without a GPU).
Importing this package needs ``triton`` but not the compiled C++ library.
"""

from __future__ import annotations

from . import distances, intra_update, pool, scatter

KERNELS = {
    "pool_hard": pool.pool_hard,
    "pool_soft": pool.pool_soft,
    "scatter_hard": scatter.scatter_hard,
    "scatter_soft": scatter.scatter_soft,
    "intra_update_hard": intra_update.intra_update_hard,
    "intra_update_soft": intra_update.intra_update_soft,
    "intra_update_hard_backward": intra_update.intra_update_hard_backward,
    "intra_update_soft_backward": intra_update.intra_update_soft_backward,
    "pair_distances": distances.pair_distances,
    "pair_distances_backward": distances.pair_distances_backward,
}
