"""The public operators of ``cga_kernels``: the public functions of the registry's rows
(``cga_kernels/ops/<op>.py``) bound to the ``cga::`` ops, which the dispatcher sends to C++ on
CPU tensors and Triton on CUDA tensors (``cga_kernels._library`` registers both)."""

from __future__ import annotations

import torch

from ._binding import Kernels, bind
from ._library import backend

KERNELS = Kernels(torch.ops.cga, host_checks_on_cpu=True)
PUBLIC = bind(KERNELS)
globals().update(PUBLIC)  # prototype_pool, prototype_scatter, intra_class_update, ...

__all__ = [*PUBLIC, "backend"]
