"""intra_class_update (cga::intra_update_hard / _soft, csrc/cpu/intra_update.cpp) against
cga_kernels.reference: values, gradients, gradcheck, dtypes, layouts, and its documented contract."""

import doctest
import itertools
import pydoc

import pytest
import torch
from kernel_cases import KS, SHAPES, assert_close_all, feats, hard, make_inputs, soft

import cga_kernels as ck
from cga_kernels import reference as ref


@pytest.mark.parametrize("spatial,k,soft", list(itertools.product(SHAPES, KS, [False, True])))
def test_forward_matches_reference(spatial, k, soft):
    x, mask = make_inputs(spatial, k, soft)
    assert_close_all(ck.intra_class_update(x, mask, num_classes=k), ref.intra_class_update(x, mask, num_classes=k))


@pytest.mark.parametrize("soft", [False, True])
def test_empty_class_gives_zero_prototype_and_no_nan(soft):
    x, mask = make_inputs((6, 5), 4, soft)
    x.requires_grad_(True)
    if soft:
        mask.requires_grad_(True)
    y, proto, counts = ck.intra_class_update(x, mask, num_classes=4)
    assert counts[0, 3] == 0
    assert torch.all(proto[0, 3] == 0)
    (y.square().sum() + ck.inter_class_loss(proto, counts)).backward()
    assert torch.isfinite(x.grad).all()
    if soft:
        assert torch.isfinite(mask.grad).all()


@pytest.mark.parametrize(
    "soft,residual,classes", list(itertools.product([False, True], [True, False], [None, [0], [1, 3]]))
)
def test_gradients_match_reference(soft, residual, classes):
    x, mask = make_inputs((5, 3, 2), 4, soft)
    grads = []
    for impl in (ck, ref):
        xi = x.clone().requires_grad_(True)
        mi = mask.clone().requires_grad_(True) if soft else mask
        y, proto, counts = impl.intra_class_update(xi, mi, num_classes=4, residual=residual, classes=classes)
        loss = (
            (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum()
            + proto.square().sum()
            + impl.inter_class_loss(proto, counts)
        )
        if soft:
            loss = loss + counts.square().sum() * 1e-3
        loss.backward()
        grads.append((xi.grad, mi.grad) if soft else (xi.grad,))
    assert_close_all(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_classes_subset_updates_only_those_classes():
    x, mask = make_inputs((8, 8), 4, soft=False)
    y, proto, _ = ck.intra_class_update(x, mask, num_classes=4, classes=[2])
    outside = (mask != 2).unsqueeze(1).expand_as(x)
    torch.testing.assert_close(y[outside], x[outside])
    inside = mask == 2
    expected = x.permute(0, 2, 3, 1)[inside] + proto[inside.nonzero()[:, 0], 2]
    torch.testing.assert_close(y.permute(0, 2, 3, 1)[inside], expected)


def test_ignore_index_excludes_voxels():
    x, mask = make_inputs((6, 6), 3, soft=False)
    mask[:, :2] = 255
    y, proto, counts = ck.intra_class_update(x, mask, num_classes=3, ignore_index=255)
    kept = mask != 255
    sub_x = x.permute(0, 2, 3, 1)[:, 2:].permute(0, 3, 1, 2)
    p2, c2 = ref.prototype_pool(sub_x, mask[:, 2:], num_classes=3)
    torch.testing.assert_close(proto, p2)
    torch.testing.assert_close(counts, c2)
    torch.testing.assert_close(y.permute(0, 2, 3, 1)[~kept], x.permute(0, 2, 3, 1)[~kept])
    assert torch.all(ck.prototype_scatter(proto, mask, ignore_index=255).permute(0, 2, 3, 1)[~kept] == 0)


@pytest.mark.parametrize("soft", [False, True])
def test_non_contiguous_and_channels_last(soft):
    x, mask = make_inputs((4, 5, 3), 4, soft)
    expected = ref.intra_class_update(x, mask, num_classes=4)
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    assert not cl.is_contiguous()
    assert_close_all(ck.intra_class_update(cl, mask, num_classes=4), expected)
    strided = torch.randn(2, 12, 4, 5, 3)[:, ::2]
    assert not strided.is_contiguous()
    assert_close_all(
        ck.intra_class_update(strided, mask, num_classes=4),
        ref.intra_class_update(strided.contiguous(), mask, num_classes=4),
    )


@pytest.mark.parametrize("dtype,soft", list(itertools.product([torch.float16, torch.bfloat16], [False, True])))
def test_half_precision_accumulates_in_float32(dtype, soft):
    x, mask = make_inputs((32, 32), 4, soft, dtype=torch.float32)
    xh = x.to(dtype)
    y, proto, counts = ck.intra_class_update(xh, mask, num_classes=4)
    assert y.dtype == dtype and proto.dtype == dtype and counts.dtype == torch.float32
    y32, p32, c32 = ref.intra_class_update(xh.float(), mask.float() if soft else mask, num_classes=4)
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(proto.float(), p32, **tol)
    torch.testing.assert_close(y.float(), y32, **tol)
    torch.testing.assert_close(counts, c32, rtol=1e-3, atol=1e-3)
    xh.requires_grad_(True)
    ck.intra_class_update(xh, mask, num_classes=4)[0].float().sum().backward()
    assert xh.grad.dtype == dtype and torch.isfinite(xh.grad.float()).all()


@pytest.mark.parametrize("soft", [False, True])
def test_deterministic_bitwise(soft):
    x, mask = make_inputs((16, 16, 8), 4, soft, channels=16)
    runs = []
    for _ in range(2):
        xi = x.clone().requires_grad_(True)
        y, proto, counts = ck.intra_class_update(xi, mask, num_classes=4)
        (y.sum() + proto.sum()).backward()
        runs.append((y, proto, counts, xi.grad))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("spatial", [(5,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("classes", [None, [1]])
@pytest.mark.parametrize("residual", [True, False])
def test_gradcheck_intra_class_update(spatial, classes, residual):
    x = feats(spatial=spatial)
    labels = hard(spatial=spatial)
    assert torch.autograd.gradcheck(
        lambda x: ck.intra_class_update(x, labels, 3, residual=residual, classes=classes), (x,)
    )
    w = soft(spatial=spatial)
    assert torch.autograd.gradcheck(
        lambda x, w: ck.intra_class_update(x, w, residual=residual, classes=classes), (x, w)
    )
    w_empty = soft(spatial=spatial, empty=True)
    assert torch.autograd.gradcheck(
        lambda x: ck.intra_class_update(x, w_empty, residual=residual, classes=classes), (x,)
    )


def test_help_states_the_contract():
    """help() shows every argument, the output shapes and the empty-class and dtype rules; the
    reference carries the same text rather than a second copy."""
    text = pydoc.render_doc(ck.intra_class_update, renderer=pydoc.plaintext)
    for word in (
        "classes",
        "ignore_index",
        "residual",
        "num_classes",
        "y (B, C, *S)",
        "proto (B, K, C)",
        "counts (B, K)",
        "counts[b, k] == 0",
        "float16/bfloat16",
        "Example",
    ):
        assert word in text, word
    assert "(x, mask, num_classes=None, residual=True, classes=None, ignore_index=None)" in text
    assert ck.intra_class_update.__doc__ in ref.intra_class_update.__doc__
    for name in ("prototype_pool", "prototype_scatter", "prototype_distances", "inter_class_loss"):
        doc = getattr(ck, name).__doc__
        assert ">>>" in doc and "Returns" in doc and "{" not in doc, name
        assert doc in getattr(ref, name).__doc__


def test_docstring_examples_run():
    """The examples in the public docstrings are executed, so they cannot drift from the code."""
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    public = [
        ck,
        ck.prototype_pool,
        ck.prototype_scatter,
        ck.intra_class_update,
        ck.prototype_distances,
        ck.inter_class_loss,
        ck.IntraClassUpdate,
        ck.InterClassDistanceLoss,
        ck.attention_to_mask,
    ]
    examples = 0
    for obj in public:
        for test in finder.find(obj, name=getattr(obj, "__name__", "cga_kernels")):
            examples += len(test.examples)
            runner.run(test)
    assert examples >= 20
    assert runner.failures == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_backward_reads_strided_gradients_without_copy(dtype):
    """The C++ backward takes grad_y with any strides (the broadcast gradient of y.sum() has stride 0)."""
    labels = torch.randint(0, 4, (2, 37))
    active, counts = (
        torch.tensor([True, False, True, True]),
        torch.tensor([[9.0, 0.0, 10.0, 18.0], [9.0, 9.0, 9.0, 10.0]]),
    )
    grad_proto = torch.randn(2, 4, 5, dtype=dtype)
    broadcast = torch.full((), 0.5, dtype=dtype).expand(2, 5, 37)
    transposed = torch.randn(2, 37, 5, dtype=dtype).transpose(1, 2)
    every_other = torch.randn(2, 5, 74, dtype=dtype)[:, :, ::2]
    for grad_y in (broadcast, transposed, every_other):
        assert not grad_y.is_contiguous()
        for residual in (True, False):
            got = torch.ops.cga.intra_update_hard_backward(grad_y, grad_proto, labels, active, counts, residual)
            expected = torch.ops.cga.intra_update_hard_backward(
                grad_y.contiguous(), grad_proto, labels, active, counts, residual
            )
            assert torch.equal(got, expected)


@pytest.mark.parametrize("soft", [False, True])
def test_gradient_through_prototypes_only(soft):
    """y unused: autograd hands no grad_y (the hard backward reads a broadcast zero instead)."""
    x, mask = make_inputs((5, 4), 4, soft)
    grads = []
    for impl in (ck, ref):
        xi = x.clone().requires_grad_(True)
        _, proto, counts = impl.intra_class_update(xi, mask, num_classes=4)
        (proto * torch.linspace(-1, 1, proto.numel()).view_as(proto)).sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1])
