"""IntraClassUpdate / InterClassDistanceLoss modules, torch.compile, and random shapes (hypothesis)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import cga_kernels as ck
from cga_kernels import reference as ref


@pytest.mark.parametrize(
    "spatial,att", [((8, 8, 8), (4, 4, 4)), ((8, 6), (4, 3)), ((10,), (5,)), ((4, 4, 4), (4, 4, 4))]
)
def test_hard_module_uses_argmax_then_nearest(spatial, att):
    feats = torch.randn(2, 5, *spatial)
    logits = torch.randn(2, 3, *att)
    y, proto, counts = ck.IntraClassUpdate(3, mode="hard")(feats, logits)
    labels = F.interpolate(logits.argmax(1, keepdim=True).float(), size=spatial, mode="nearest").long()[:, 0]
    for a, b in zip((y, proto, counts), ref.intra_class_update(feats, labels, 3)):
        torch.testing.assert_close(a, b)


def test_soft_module_uses_softmax_then_linear_and_is_differentiable():
    feats = torch.randn(2, 5, 8, 8, 8)
    logits = torch.randn(2, 3, 4, 4, 4, requires_grad=True)
    y, proto, counts = ck.IntraClassUpdate(3, mode="soft")(feats, logits)
    w = F.interpolate(logits.softmax(1), size=(8, 8, 8), mode="trilinear", align_corners=False)
    for a, b in zip((y, proto, counts), ref.intra_class_update(feats, w)):
        torch.testing.assert_close(a, b)
    y.square().mean().backward()
    assert logits.grad.abs().sum() > 0


def test_module_classes_and_no_residual():
    feats = torch.randn(1, 4, 6, 6)
    logits = torch.randn(1, 3, 6, 6)
    y, proto, _ = ck.IntraClassUpdate(3, residual=False, classes=[1])(feats, logits)
    labels = logits.argmax(1)
    assert torch.all(y.permute(0, 2, 3, 1)[labels != 1] == 0)


def test_inter_class_loss_module_weight():
    proto, counts = torch.randn(2, 4, 3), torch.ones(2, 4)
    loss = ck.InterClassDistanceLoss(form="official", weight=0.5)(proto, counts)
    torch.testing.assert_close(loss, 0.5 * ref.inter_class_loss(proto, counts, form="official"))


def test_torch_compile_fullgraph_module():
    hard = ck.IntraClassUpdate(4, mode="hard")
    soft = ck.IntraClassUpdate(4, mode="soft")

    def f(x, a):
        y1, p, c = hard(x, a)
        y2, _, _ = soft(x, a)
        return y1 + y2, ck.inter_class_loss(p, c)

    compiled = torch.compile(f, fullgraph=True)
    x = torch.randn(2, 8, 8, 8, 8, requires_grad=True)
    a = torch.randn(2, 4, 4, 4, 4, requires_grad=True)
    y, loss = compiled(x, a)
    y_e, loss_e = f(x, a)
    torch.testing.assert_close(y, y_e)
    torch.testing.assert_close(loss, loss_e)
    (y.sum() + loss).backward()
    assert torch.isfinite(x.grad).all() and a.grad.abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 9),
    spatial=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    k=st.integers(1, 6),
    soft=st.booleans(),
    residual=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_shapes_match_reference(batch, channels, spatial, k, soft, residual, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, *spatial, generator=g, dtype=torch.float64)
    if soft:
        mask = torch.rand(batch, k, *spatial, generator=g, dtype=torch.float64)
    else:
        mask = torch.randint(0, k, (batch, *spatial), generator=g)
    for a, b in zip(
        ck.intra_class_update(x, mask, k, residual=residual), ref.intra_class_update(x, mask, k, residual=residual)
    ):
        torch.testing.assert_close(a, b)
    proto, counts = ck.prototype_pool(x, mask, k)
    torch.testing.assert_close(ck.inter_class_loss(proto, counts), ref.inter_class_loss(proto, counts))
