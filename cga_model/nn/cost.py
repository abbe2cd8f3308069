"""What a network costs, measured without running it for real: parameters, FLOPs, bytes saved for backward.

- ``flops_of``: ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs; the
  paper's "FLOPs" are multiply-adds, i.e. half). FlopCounterMode knows nothing of the ``cga::``
  custom ops, so each of them is mapped to its formula in ``cga_kernels.flops`` (the one home of
  the operators' FLOP counts: dense class weights, ``4 B K C N + B C N`` for the update).
- ``saved_bytes_of``: the tensors autograd saves for backward (``saved_tensors_hooks``), each
  distinct tensor counted once.

Both work on the *meta* device (shapes only), so sizes too large to run still get their cost.
Used by the model card, the drop-in examples and the benchmarks.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from cga_kernels.flops import flop_counter_mapping


def params_of(module: torch.nn.Module) -> int:
    """Number of parameters (elements) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts the ``cga::`` ops."""
    return FlopCounterMode(display=False, custom_mapping=flop_counter_mapping())


def flops_of(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` (forward, and backward if ``fn`` runs it), ``cga::`` ops included."""
    with flop_counter() as counter:
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
