"""Triton kernels (cga_triton:: ops, run by Triton's interpreter on CPU) against the reference.

tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported. Shapes are small: the
interpreter executes each program in Python.
"""

import itertools

import pytest
import torch

from cga_kernels import reference as ref
from cga_kernels import triton_ops as tri

CASES = list(itertools.product([(9, 7), (5, 6, 3)], [1, 4, 9], [False, True]))  # N never a block multiple


def inputs(spatial, k, soft, dtype=torch.float32, channels=20):
    x = torch.randn(2, channels, *spatial, dtype=dtype)
    if soft:
        mask = torch.rand(2, k, *spatial, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
        if k > 1:
            mask[1, k - 1] = 0
    else:
        mask = torch.randint(0, k, (2, *spatial))
        if k > 1:
            mask[1][mask[1] == k - 1] = 0
    return x, mask


@pytest.mark.parametrize("spatial,k,soft", CASES)
def test_values_match_reference(spatial, k, soft):
    x, mask = inputs(spatial, k, soft)
    classes = [0] if k > 1 else None
    for a, b in zip(
        tri.intra_class_update(x, mask, k, classes=classes), ref.intra_class_update(x, mask, k, classes=classes)
    ):
        torch.testing.assert_close(a, b)
    for a, b in zip(tri.prototype_pool(x, mask, k), ref.prototype_pool(x, mask, k)):
        torch.testing.assert_close(a, b)
    proto = torch.randn(2, k, 20)
    torch.testing.assert_close(tri.prototype_scatter(proto, mask), ref.prototype_scatter(proto, mask))
    counts = ref.prototype_pool(x, mask, k)[1]
    torch.testing.assert_close(tri.prototype_distances(proto, counts), ref.prototype_distances(proto, counts))
    torch.testing.assert_close(tri.inter_class_loss(proto, counts), ref.inter_class_loss(proto, counts))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("classes", [None, [2]])
def test_gradients_match_reference(soft, classes):
    x, mask = inputs((6, 5), 4, soft)
    grads = []
    for impl in (tri, ref):
        xi = x.clone().requires_grad_(True)
        mi = mask.clone().requires_grad_(True) if soft else mask
        y, proto, counts = impl.intra_class_update(xi, mi, 4, classes=classes)
        (y.sin().sum() + proto.square().sum() + impl.inter_class_loss(proto, counts, form="official")).backward()
        grads.append((xi.grad, mi.grad) if soft else (xi.grad,))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_float64_gradcheck():
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 3))
    w = (torch.rand(2, 3, 4, 3, dtype=torch.float64) + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: tri.intra_class_update(x, labels, 3, classes=[0, 2]), (x,))
    assert torch.autograd.gradcheck(lambda x, w: tri.intra_class_update(x, w, residual=False), (x, w))
    p = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: tri.prototype_scatter(p, w.detach()), (p,))
    assert torch.autograd.gradcheck(
        lambda p: tri.inter_class_loss(p, torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)), (p,)
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("soft", [False, True])
def test_half_precision(dtype, soft):
    x, mask = inputs((8, 8), 4, soft)
    y, proto, counts = tri.intra_class_update(x.to(dtype), mask, 4)
    assert y.dtype == dtype and proto.dtype == dtype and counts.dtype == torch.float32
    y_ref, p_ref, _ = ref.intra_class_update(x.to(dtype).float(), mask, 4)
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(y.float(), y_ref, **tol)
    torch.testing.assert_close(proto.float(), p_ref, **tol)


@pytest.mark.parametrize("soft", [False, True])
def test_deterministic_mode_is_bitwise_repeatable(soft):
    x, mask = inputs((9, 7, 3), 4, soft, channels=24)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            xi = x.clone().requires_grad_(True)
            y, proto, counts = tri.intra_class_update(xi, mask, 4)
            (y.sum() + proto.sum()).backward()
            runs.append((y, proto, counts, xi.grad))
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    for a, b in zip(runs[0][:3], ref.intra_class_update(x, mask, 4)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "name",
    [
        "pool_hard",
        "pool_soft",
        "scatter_hard",
        "scatter_soft",
        "intra_update_hard",
        "intra_update_soft",
        "pair_distances",
    ],
)
def test_opcheck_triton_ops(name):
    x = torch.randn(2, 4, 15, requires_grad=True)
    lab = torch.randint(0, 3, (2, 15))
    w = torch.rand(2, 3, 15, requires_grad=True)
    act = torch.tensor([True, False, True])
    p = torch.randn(2, 3, 4, requires_grad=True)
    args = {
        "pool_hard": (x, lab, 3),
        "pool_soft": (x, w),
        "scatter_hard": (p, lab),
        "scatter_soft": (p, w),
        "intra_update_hard": (x, lab, act, True),
        "intra_update_soft": (x, w, act, False),
        "pair_distances": (p, torch.tensor([[True, False, True], [True, True, True]])),
    }[name]
    torch.library.opcheck(getattr(torch.ops.cga_triton, name).default, args)


def test_large_class_count_and_channels():
    x, mask = inputs((6, 5), 40, soft=False, channels=130)  # K padded to 64, C over several blocks
    for a, b in zip(tri.intra_class_update(x, mask, 40), ref.intra_class_update(x, mask, 40)):
        torch.testing.assert_close(a, b)


HOST_READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


@pytest.fixture
def no_host_reads(monkeypatch):
    """Every Tensor method that reads data back to the host raises (a CUDA host synchronisation)."""

    def forbid(name):
        def host_read(self, *args, **kwargs):
            raise AssertionError(f"host read Tensor.{name} on the Triton path")

        return host_read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, forbid(name))


@pytest.mark.parametrize("soft", [False, True])
def test_no_host_reads_forward_and_backward(no_host_reads, soft):
    x, mask = inputs((6, 5), 4, soft)
    xi = x.clone().requires_grad_(True)
    mi = mask.clone().requires_grad_(True) if soft else mask
    y, proto, counts = tri.intra_class_update(xi, mi, 4, classes=[0, 2])
    pooled, _ = tri.prototype_pool(xi, mi, 4)
    scattered = tri.prototype_scatter(proto, mi)
    loss = tri.inter_class_loss(proto, counts, form="official") + tri.prototype_distances(proto, counts).sum()
    (y.sin().sum() + pooled.sum() + scattered.sum() + loss).backward()
    assert xi.grad is not None and (mi.grad is not None or not soft)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda x, labels, w: tri.prototype_pool(x, labels + 1, 3), r"mask labels must be in \[0, 3\)"),
        (lambda x, labels, w: tri.intra_class_update(x, labels - 1, 3), r"mask labels must be in \[0, 3\)"),
        (
            lambda x, labels, w: tri.prototype_scatter(torch.randn(2, 3, 4), labels + 1),
            r"mask labels must be in \[0, 3\)",
        ),
        (
            lambda x, labels, w: tri.intra_class_update(x, labels + 300, 3, ignore_index=255),
            r"mask labels must be in \[0, 3\) or equal ignore_index=255",
        ),
        (lambda x, labels, w: tri.prototype_pool(x, -w), "soft mask weights must be finite and non-negative"),
        (
            lambda x, labels, w: tri.intra_class_update(x, w * float("nan")),
            "soft mask weights must be finite and non-negative",
        ),
        (
            lambda x, labels, w: tri.prototype_scatter(torch.randn(2, 3, 4), w * float("inf")),
            "soft mask weights must be finite and non-negative",
        ),
    ],
)
def test_bad_values_fail_as_device_assertions_without_host_reads(no_host_reads, call, match):
    """On the Triton path the label-range and weight checks are ``torch._assert_async``: a device-side
    assertion on CUDA (no host synchronisation), an immediate RuntimeError on CPU tensors."""
    x, labels, w = torch.randn(2, 4, 4, 5), torch.randint(0, 3, (2, 4, 5)), torch.rand(2, 3, 4, 5)
    with pytest.raises(RuntimeError, match=match):
        call(x, labels, w)


def test_only_cpu_tensors_on_the_cpp_kernels_are_checked_on_the_host():
    from cga_kernels._front import KERNELS as cpp
    from cga_kernels._validate import reads_on_host
    from cga_kernels.triton_ops import KERNELS as triton

    assert reads_on_host(cpp.host_checks_on_cpu, torch.device("cpu"))
    assert not reads_on_host(cpp.host_checks_on_cpu, torch.device("cuda"))
    assert not reads_on_host(triton.host_checks_on_cpu, torch.device("cpu"))
    assert not reads_on_host(triton.host_checks_on_cpu, torch.device("cuda"))


def test_host_read_guard_is_effective(no_host_reads):
    """The C++ path on CPU tensors reads labels on the host (eager ValueError): the guard sees it."""
    import cga_kernels as ck

    with pytest.raises(AssertionError, match="host read Tensor"):
        ck.prototype_pool(torch.randn(2, 4, 5), torch.randint(0, 3, (2, 5)), 3)
