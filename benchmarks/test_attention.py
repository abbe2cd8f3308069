"""Attention modules at one feature map: SAM vs a non-local block vs a Context Prior layer.

C=128, K=4, B=1. Time is measured where the block runs in reasonable time and memory; FLOPs,
parameters and bytes saved for backward are measured on the meta device for every size, so a
size too large to run still reports what it would need (``fits`` says whether it ran).
"""

import pytest
import torch

from .blocks import SAM, ContextPriorLayer, NonLocalBlock
from .measure import flops_of, params_of, saved_bytes_of

C, K = 128, 4
SIZES = [16, 24, 32, 48]
RUN_LIMIT = 16  # timings above this size take minutes (N^2 C multiply-adds) on 2 CPU cores


def build(name, size, device):
    with torch.device(device):
        if name == "sam":
            return SAM(4, K, rate=8)
        if name == "nonlocal":
            return NonLocalBlock(C)
        return ContextPriorLayer(C, (size, size, size))


def call(name, block, size, device):
    with torch.device(device):
        feats = torch.randn(1, C, size, size, size, requires_grad=True)
        if name == "sam":
            image = torch.randn(1, 4, 8 * size, 8 * size, 8 * size)
            return lambda: block(feats, image)
        return lambda: block(feats)


def costs(name, size) -> dict:
    """FLOPs (the SAM's update op included), multiply-adds, parameters and saved bytes (meta device: nothing is
    allocated)."""
    block = build(name, size, "meta")
    run = call(name, block, size, "meta")
    flops = flops_of(run)
    return {"flops": flops, "macs": flops // 2, "params": params_of(block), "saved_bytes": saved_bytes_of(run)}


def fits(name, size) -> bool:
    return size <= RUN_LIMIT or name == "sam" and size <= 24


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["sam", "nonlocal", "contextprior"])
def test_attention_block(benchmark, name, size):
    benchmark.group = f"attention {size}^3 C={C}"
    info = costs(name, size)
    info["fits"] = fits(name, size)
    if not info["fits"]:
        info["reason"] = (
            f"not timed: needs {info['saved_bytes'] / 2**30:.1f} GiB saved for backward and "
            f"{info['macs'] / 1e9:.0f} G multiply-adds"
        )
    benchmark.extra_info.update(info)
    if info["fits"]:
        block = build(name, size, "cpu")
        run = call(name, block, size, "cpu")
        benchmark.pedantic(lambda: run(), rounds=3, warmup_rounds=1, iterations=1)
    else:
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # recorded with its costs, timing n/a
