"""The public operators of ``cga_kernels``: the functions of ``cga_kernels/ops/<op>.py`` bound to
the ``cga::`` ops, which the dispatcher sends to C++ on CPU tensors and Triton on CUDA tensors
(``cga_kernels._library`` registers both)."""

from __future__ import annotations

import torch

from ._library import backend
from .ops import Kernels, bind

KERNELS = Kernels(torch.ops.cga, host_checks_on_cpu=True)
prototype_pool, prototype_scatter, intra_class_update, prototype_distances, inter_class_loss = bind(KERNELS)

__all__ = [
    "prototype_pool",
    "prototype_scatter",
    "intra_class_update",
    "prototype_distances",
    "inter_class_loss",
    "backend",
]
