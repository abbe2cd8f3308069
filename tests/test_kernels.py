"""The compiled cga:: operators against cga_kernels.reference: values, gradients, dtypes, layouts."""

import itertools

import pytest
import torch

import cga_kernels as ck
from cga_kernels import reference as ref

SHAPES = [(5,), (5, 7), (5, 7, 3), (4, 4, 4)]
KS = [1, 2, 4, 7]


def make_inputs(spatial, k, soft, dtype=torch.float32, batch=2, channels=6, empty_class=True):
    x = torch.randn(batch, channels, *spatial, dtype=dtype)
    if soft:
        mask = torch.rand(batch, k, *spatial, dtype=dtype if dtype != torch.float16 else torch.float32)
        if empty_class and k > 1:
            mask[0, k - 1] = 0  # class k-1 absent from sample 0
    else:
        mask = torch.randint(0, k, (batch, *spatial))
        if empty_class and k > 1:
            mask[0][mask[0] == k - 1] = 0
    return x, mask


def assert_close_all(actual, expected, **tol):
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **tol)


@pytest.mark.parametrize("spatial,k,soft", list(itertools.product(SHAPES, KS, [False, True])))
def test_forward_matches_reference(spatial, k, soft):
    x, mask = make_inputs(spatial, k, soft)
    assert_close_all(ck.prototype_pool(x, mask, num_classes=k), ref.prototype_pool(x, mask, num_classes=k))
    assert_close_all(ck.intra_class_update(x, mask, num_classes=k), ref.intra_class_update(x, mask, num_classes=k))
    proto = torch.randn(2, k, 6)
    torch.testing.assert_close(ck.prototype_scatter(proto, mask), ref.prototype_scatter(proto, mask))
    _, counts = ref.prototype_pool(x, mask, num_classes=k)
    torch.testing.assert_close(ck.prototype_distances(proto, counts), ref.prototype_distances(proto, counts))


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


@pytest.mark.parametrize("soft,residual,classes", list(itertools.product([False, True], [True, False], [None, [0], [1, 3]])))
def test_gradients_match_reference(soft, residual, classes):
    x, mask = make_inputs((5, 3, 2), 4, soft)
    grads = []
    for impl in (ck, ref):
        xi = x.clone().requires_grad_(True)
        mi = mask.clone().requires_grad_(True) if soft else mask
        y, proto, counts = impl.intra_class_update(xi, mi, num_classes=4, residual=residual, classes=classes)
        loss = (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum() + proto.square().sum() + impl.inter_class_loss(proto, counts)
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
    assert_close_all(ck.intra_class_update(strided, mask, num_classes=4), ref.intra_class_update(strided.contiguous(), mask, num_classes=4))


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


def test_hard_counts_do_not_overflow_in_half():
    x = torch.randn(1, 2, 300, 300, dtype=torch.float16)
    labels = torch.zeros(1, 300, 300, dtype=torch.long)
    _, counts = ck.prototype_pool(x, labels, num_classes=1)
    assert counts.item() == 90000  # > float16 max 65504


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


def test_coincident_prototypes_have_finite_distance_gradient():
    proto = torch.zeros(1, 3, 4, requires_grad=True)
    counts = torch.ones(1, 3)
    dist = ck.prototype_distances(proto, counts)
    assert torch.all(dist == 0)
    for form in ("paper",):
        ck.inter_class_loss(proto, counts, form=form).backward()
        assert torch.isfinite(proto.grad).all()


def test_distance_is_exact_for_nearby_large_prototypes():
    """The released expansion |a|^2 + |b|^2 - 2ab cancels catastrophically here; differences do not."""
    base = torch.full((1, 1, 64), 1000.0)
    proto = torch.cat([base, base + 1e-2], dim=1)
    dist = ck.prototype_distances(proto, torch.ones(1, 2))
    torch.testing.assert_close(dist[0, 0, 1], torch.tensor(1e-2 * 8.0), rtol=1e-3, atol=0)
