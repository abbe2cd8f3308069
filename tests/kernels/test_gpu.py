"""The registered cga:: ops on real CUDA tensors (Triton kernels). Run on a GPU machine with
``make test`` or ``.venv/bin/python -m pytest -m gpu tests/test_gpu.py``."""

import time

import pytest
import torch

import cga_kernels as ck
from cga_kernels import reference as ref

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("soft", [False, True])
def test_cuda_values_and_gradients(soft):
    x = torch.randn(2, 32, 16, 16, 16, device="cuda", requires_grad=True)
    mask = (
        torch.rand(2, 4, 16, 16, 16, device="cuda", requires_grad=True)
        if soft
        else torch.randint(0, 4, (2, 16, 16, 16), device="cuda")
    )
    y, proto, counts = ck.intra_class_update(x, mask, 4)
    y_r, p_r, c_r = ref.intra_class_update(x, mask, 4)
    torch.testing.assert_close(y, y_r, rtol=1e-4, atol=1e-4)
    g = torch.autograd.grad(y.sum() + proto.sum(), x)[0]
    g_r = torch.autograd.grad(y_r.sum() + p_r.sum(), x)[0]
    torch.testing.assert_close(g, g_r, rtol=1e-4, atol=1e-4)


def test_cuda_opcheck_and_compile():
    x = torch.randn(2, 8, 64, device="cuda", requires_grad=True)
    lab = torch.randint(0, 3, (2, 64), device="cuda")
    torch.library.opcheck(
        torch.ops.cga.intra_update_hard.default, (x, lab, torch.ones(3, dtype=torch.bool, device="cuda"), True)
    )
    module = ck.IntraClassUpdate(4)
    f = torch.compile(lambda a, b: module(a, b)[0], fullgraph=True)
    feats, logits = torch.randn(2, 8, 8, 8, 8, device="cuda"), torch.randn(2, 4, 4, 4, 4, device="cuda")
    torch.testing.assert_close(f(feats, logits), module(feats, logits)[0])


def test_cuda_fused_faster_than_reference():
    x = torch.randn(2, 32, 64, 64, 64, device="cuda", requires_grad=True)
    lab = torch.randint(0, 4, (2, 64, 64, 64), device="cuda")

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    fused = timed(lambda: ck.intra_class_update(x, lab, 4)[0].sum().backward())
    reference = timed(lambda: ref.intra_class_update(x, lab, 4)[0].sum().backward())
    print(f"CUDA fwd+bwd 2x32x64^3: fused {fused * 100:.2f} ms, reference {reference * 100:.2f} ms")
    assert fused < reference
