"""Cost measures of the benchmark suites (docs/design.md, how we measure).

Parameters, FLOPs (``cga::`` ops included) and bytes saved for backward come from the package
(``cga_model.nn.cost``, also used by the model card and the examples); the FLOP count of an
op from ``cga_kernels.flops``. Only what the benchmarks alone need lives here.
"""

from __future__ import annotations

import time

import torch

from cga_kernels.flops import intra_class_update_flops
from cga_model.nn.cost import flops_of, params_of, saved_bytes_of

__all__ = ["flops_of", "params_of", "saved_bytes_of", "copy_seconds", "analytic_update_flops"]


def copy_seconds(nbytes: int, repeats: int = 5) -> float:
    """Median time of a plain copy of ``nbytes`` into a fresh tensor (``clone``: read + write,
    allocation included like the op's own output) on the CPU."""
    src = torch.randn(nbytes // 4)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        src.clone()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def analytic_update_flops(batch: int, classes: int, channels: int, n: int) -> int:
    """FLOPs of one residual intra-class update (``cga_kernels.flops.intra_class_update_flops``)."""
    return intra_class_update_flops(batch=batch, classes=classes, channels=channels, voxels=n)
