"""Kernel speed: fused cga op vs the pure-PyTorch reference vs the released code's approach.

Forward and forward+backward, hard and soft masks, at the bottleneck shape (2x128x16^3) and
at high resolution (2x32x64^3), K=4. ``extra_info`` holds FLOPs, bytes saved for backward,
achieved GB/s over the six x-sized passes of forward+backward, and that speed as a fraction
of a plain tensor copy measured in the same run (the memory roofline).
"""

import pytest
import torch

import cga_kernels as ck
from cga_kernels import reference as ref

from .measure import analytic_update_flops, copy_seconds, saved_bytes_of
from .released import released_intra_update, released_soft_update

SHAPES = {"2x128x16^3": (2, 128, (16, 16, 16)), "2x32x64^3": (2, 32, (64, 64, 64))}
IMPLS = {
    "fused": lambda x, m, soft: ck.intra_class_update(x, m, 4)[:2],
    "reference": lambda x, m, soft: ref.intra_class_update(x, m, 4)[:2],
    "released": lambda x, m, soft: released_soft_update(x, m) if soft else released_intra_update(x, m, 4),
}


def make(shape, soft):
    b, c, spatial = SHAPES[shape]
    torch.manual_seed(0)
    x = torch.randn(b, c, *spatial, requires_grad=True)
    mask = torch.rand(b, 4, *spatial, requires_grad=True) if soft else torch.randint(0, 4, (b, *spatial))
    return x, mask


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_intra_update(benchmark, shape, soft, impl, backward):
    x, mask = make(shape, soft)
    fn = IMPLS[impl]

    def run():
        y, proto = fn(x, mask, soft)
        if backward:
            (y.sum() + proto.sum()).backward()

    benchmark.group = f"intra_update {'soft' if soft else 'hard'} {shape} {'fwd+bwd' if backward else 'fwd'}"
    rounds = 3 if shape == "2x32x64^3" else 10
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=1, iterations=1)
    b, c, spatial = SHAPES[shape]
    n = spatial[0] * spatial[1] * spatial[2]
    x_bytes = x.numel() * x.element_size()
    passes = 6 if backward else 3
    median = benchmark.stats.stats.median
    copy = copy_seconds(x_bytes)  # one copy = two x-sized passes (read + write)
    benchmark.extra_info.update(
        flops=analytic_update_flops(b, 4, c, n) * (3 if backward else 1),
        saved_bytes=saved_bytes_of(lambda: fn(x, mask, soft)),
        x_bytes=x_bytes,
        gbps=passes * x_bytes / median / 1e9,
        roofline_fraction=(passes / 2) * copy / median,
    )
