"""Device-independent cost measures used by the benchmark suites (DESIGN.md section 5).

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode``; ``macs = flops / 2`` is the paper's
  convention (one multiply-add = one FLOP). Custom ops are not counted by FlopCounterMode:
  the intra-class update adds ``analytic_update_flops``.
- Saved bytes: the tensors autograd saves for backward (``saved_tensors_hooks``), each
  distinct tensor counted once. Works on the meta device, so sizes that cannot run still get
  their memory and FLOPs.
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def flops_of(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def saved_bytes_of(fn, *args) -> int:
    """Bytes of the tensors saved for backward while running ``fn(*args)`` (each tensor once)."""
    seen, total = set(), [0]

    def pack(t):
        key = t.untyped_storage().data_ptr() if t.device.type != "meta" else id(t)
        if key not in seen or key == 0:
            seen.add(key)
            total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return total[0]


def params_of(module) -> int:
    return sum(p.numel() for p in module.parameters())


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
    """Pool (one multiply-add per class and element) + scatter (same) + residual add."""
    return 2 * 2 * batch * classes * channels * n + batch * channels * n
