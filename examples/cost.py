"""What adding category-guided attention costs a host network: parameters, FLOPs, saved activations."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def cost(fn, x, model) -> dict:
    with FlopCounterMode(display=False) as counter:
        fn(x)
    saved, seen = [0], set()

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return {"params": sum(p.numel() for p in model.parameters()), "flops": counter.get_total_flops(), "saved_bytes": saved[0]}


def compare(name, host, wrapped, x) -> str:
    a, b = cost(host, x, host), cost(wrapped, x, wrapped)
    return (f"| {name} | {a['params']:,} -> {b['params']:,} | {a['flops'] / 1e9:.3f} -> {b['flops'] / 1e9:.3f} "
            f"| {a['saved_bytes'] / 2**20:.1f} -> {b['saved_bytes'] / 2**20:.1f} MiB |")
