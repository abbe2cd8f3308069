"""float64 gradcheck of every public op and torch.library.opcheck of every low-level cga:: op."""

import pytest
import torch

import cga_kernels as ck

D = torch.float64


def hard(batch=2, spatial=(3, 4), k=3):
    labels = torch.randint(0, k, (batch, *spatial))
    labels[0][labels[0] == k - 1] = 0  # an absent class
    return labels


def soft(batch=2, spatial=(3, 4), k=3, empty=False):
    """Soft weights; gradcheck perturbs them by +-eps, so only an `empty` class (no grad) may hold zeros."""
    w = torch.rand(batch, k, *spatial, dtype=D) + 0.1
    if empty:
        w[0, k - 1] = 0
        return w
    return w.requires_grad_(True)


def feats(batch=2, channels=4, spatial=(3, 4)):
    return torch.randn(batch, channels, *spatial, dtype=D, requires_grad=True)


@pytest.mark.parametrize("spatial", [(5,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("classes", [None, [1]])
@pytest.mark.parametrize("residual", [True, False])
def test_gradcheck_intra_class_update(spatial, classes, residual):
    x = feats(spatial=spatial)
    labels = hard(spatial=spatial)
    assert torch.autograd.gradcheck(lambda x: ck.intra_class_update(x, labels, 3, residual=residual, classes=classes), (x,))
    w = soft(spatial=spatial)
    assert torch.autograd.gradcheck(lambda x, w: ck.intra_class_update(x, w, residual=residual, classes=classes), (x, w))
    w_empty = soft(spatial=spatial, empty=True)
    assert torch.autograd.gradcheck(lambda x: ck.intra_class_update(x, w_empty, residual=residual, classes=classes), (x,))


def test_gradcheck_pool_and_scatter():
    x, labels, w = feats(), hard(), soft()
    proto = torch.randn(2, 3, 4, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ck.prototype_pool(x, labels, 3), (x,))
    assert torch.autograd.gradcheck(lambda x, w: ck.prototype_pool(x, w), (x, w))
    assert torch.autograd.gradcheck(lambda p: ck.prototype_scatter(p, labels), (proto,))
    assert torch.autograd.gradcheck(lambda p, w: ck.prototype_scatter(p, w), (proto, w))


@pytest.mark.parametrize("form", ["paper", "official"])
def test_gradcheck_distances_and_loss(form):
    proto = torch.randn(2, 4, 5, dtype=D, requires_grad=True)
    counts = torch.tensor([[1.0, 0.0, 2.0, 3.0], [3.0, 4.0, 5.0, 0.5]], dtype=D)
    assert torch.autograd.gradcheck(lambda p: ck.prototype_distances(p, counts), (proto,))
    # counts get a gradient in the official form (prototype rescaling); presence is a step, so keep counts away from 0
    c = (counts + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, c: ck.inter_class_loss(p, c, form=form), (proto, c))


def _flat(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


OPCHECK_CASES = {
    "pool_hard": lambda x, lab, w, act, p: (x, lab, 3),
    "pool_soft": lambda x, lab, w, act, p: (x, w),
    "scatter_hard": lambda x, lab, w, act, p: (p, lab),
    "scatter_soft": lambda x, lab, w, act, p: (p, w),
    "intra_update_hard": lambda x, lab, w, act, p: (x, lab, act, True),
    "intra_update_soft": lambda x, lab, w, act, p: (x, w, act, False),
    "pair_distances": lambda x, lab, w, act, p: (p, torch.tensor([[True, False, True], [True, True, True]])),
}


@pytest.mark.parametrize("name", sorted(OPCHECK_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_opcheck(name, dtype):
    x = _flat(torch.randn(2, 4, 3, 5)).to(dtype).contiguous().requires_grad_(True)
    lab = hard(spatial=(3, 5)).reshape(2, -1).contiguous()
    w = torch.rand(2, 3, 15).to(dtype).requires_grad_(True)
    act = torch.tensor([True, False, True])
    p = torch.randn(2, 3, 4).to(dtype).requires_grad_(True)
    args = OPCHECK_CASES[name](x, lab, w, act, p)
    torch.library.opcheck(getattr(torch.ops.cga, name).default, args)


def test_opcheck_backward_ops():
    lab = hard(spatial=(3, 5)).reshape(2, -1).contiguous()
    act = torch.tensor([True, False, True])
    g, gp = torch.randn(2, 4, 15), torch.randn(2, 3, 4)
    counts = torch.tensor([[5.0, 0.0, 10.0], [5.0, 5.0, 5.0]])
    torch.library.opcheck(torch.ops.cga.intra_update_hard_backward.default, (g, gp, lab, act, counts, True))
    x, w, p = torch.randn(2, 4, 15), torch.rand(2, 3, 15), torch.randn(2, 3, 4)
    torch.library.opcheck(torch.ops.cga.intra_update_soft_backward.default, (g, gp, torch.randn(2, 3), x, w, act, p, counts, True))
    proto = torch.randn(2, 3, 4)
    dist = torch.ops.cga.pair_distances(proto, torch.ones(2, 3, dtype=torch.bool))
    torch.library.opcheck(torch.ops.cga.pair_distances_backward.default, (torch.randn(2, 3, 3), proto, dist))
