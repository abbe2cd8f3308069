"""Kernel speed: the fused cga op vs the pure-PyTorch reference, the released code's approach
and, for hard masks, the peers a user would write (``benchmarks/peers.py``).

Forward and forward+backward, K=4, at the bottleneck shapes (2x128x16^3, 8x128x16^3) and at
high resolution (2x32x64^3). The released code's Python one-hot loop runs only at 2x128x16^3
(``released-loop``); elsewhere ``released`` stands for it with the loop vectorised (a lower
bound; the report extrapolates the loop's per-voxel cost). ``extra_info`` holds FLOPs, bytes
saved for backward, achieved GB/s over the x-sized passes (3 forward, 3 more backward), and
that speed as a fraction of a plain tensor copy measured in the same run (the memory roofline).
For comparisons, prefer the interleaved medians of ``python -m benchmarks.peers``.
"""

import pytest
import torch

from cga_kernels import reference as ref

from .measure import analytic_update_flops, copy_seconds, saved_bytes_of
from .peers import CANDIDATES, LOOP_SHAPES, SHAPES, torch_scatter_missing
from .released import released_soft_update

HARD = {
    "fused": "fused",
    "reference": "reference (one-hot bmm)",
    "released": "released (vectorised one-hot)",
    "released-loop": "released (Python one-hot loop)",
    "scatter_add": "scatter_add_ + gather",
    "torch_scatter": "torch_scatter.scatter_mean + gather",
}
SOFT = {
    "fused": CANDIDATES["fused"],
    "reference": lambda x, w: ref.intra_class_update(x, w)[:2],
    "released": released_soft_update,
}


def _case(shape, soft, impl):
    marks = []
    if impl == "torch_scatter" and torch_scatter_missing():
        marks.append(pytest.mark.skip(reason=torch_scatter_missing()))
    return pytest.param(shape, soft, impl, marks=marks, id=f"{impl}-{'soft' if soft else 'hard'}-{shape}")


CASES = [
    _case(shape, False, impl) for shape in SHAPES for impl in HARD if impl != "released-loop" or shape in LOOP_SHAPES
]
CASES += [_case(shape, True, impl) for shape in SHAPES for impl in SOFT]


def make(shape, soft):
    b, c, s = SHAPES[shape]
    torch.manual_seed(0)
    x = torch.randn(b, c, s, s, s, requires_grad=True)
    mask = torch.rand(b, 4, s, s, s, requires_grad=True) if soft else torch.randint(0, 4, (b, s, s, s))
    return x, mask


@pytest.mark.parametrize("shape,soft,impl", CASES)
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_intra_update(benchmark, shape, soft, impl, backward):
    x, mask = make(shape, soft)
    fn = SOFT[impl] if soft else CANDIDATES[HARD[impl]]

    def run():
        x.grad = None
        y, proto = fn(x, mask)
        if backward:
            (y.sum() + proto.sum()).backward()

    benchmark.group = f"intra_update {'soft' if soft else 'hard'} {shape} {'fwd+bwd' if backward else 'fwd'}"
    rounds = 3 if shape == "2x32x64^3" else 10
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=1, iterations=1)
    b, c, s = SHAPES[shape]
    x_bytes = x.numel() * x.element_size()
    passes = 6 if backward else 3
    benchmark.extra_info.update(
        flops=analytic_update_flops(b, 4, c, s**3) * (3 if backward else 1),
        saved_bytes=saved_bytes_of(lambda: fn(x, mask)),
        x_bytes=x_bytes,
    )
    if benchmark.disabled:  # --benchmark-disable: run once as a test, no timing to report
        return
    median = benchmark.stats.stats.median
    copy = copy_seconds(x_bytes)  # one copy = two x-sized passes (read + write)
    benchmark.extra_info.update(
        gbps=passes * x_bytes / median / 1e9,
        roofline_fraction=(passes / 2) * copy / median,
    )
