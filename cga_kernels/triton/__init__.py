"""Triton GPU kernels of the ``cga::`` ops, one module per op (same names as csrc/cpu/):
``pool.py``, ``scatter.py``, ``intra_update.py``, ``distances.py``; ``_tiles.py`` holds the
launch parameters and the class-masked tile kernels they share.

``KERNELS`` maps every low-level op name of ``cga_kernels.registry`` to its launcher, the
function of that name in ``<op>.py``. ``cga_kernels._library`` registers them as the CUDA
kernels of the ``cga::`` ops and as the ``cga_triton::`` ops, which run on any device (on CPU
tensors under ``TRITON_INTERPRET=1``, how they are tested without a GPU). Importing this
package needs ``triton`` but not the compiled C++ library.
"""

from __future__ import annotations

from ..registry import OPS

KERNELS = {name: launcher for row in OPS for name, launcher in row.triton_kernels().items()}
