"""prototype_distances and inter_class_loss (cga::pair_distances, csrc/cpu/distances.cpp)."""

import itertools

import pytest
import torch
from kernel_cases import KS, SHAPES, D, make_inputs

import cga_kernels as ck
from cga_kernels import reference as ref


@pytest.mark.parametrize("spatial,k,soft_mask", list(itertools.product(SHAPES, KS, [False, True])))
def test_forward_matches_reference(spatial, k, soft_mask):
    x, mask = make_inputs(spatial, k, soft_mask)
    proto = torch.randn(2, k, 6)
    _, counts = ref.prototype_pool(x, mask, num_classes=k)
    torch.testing.assert_close(ck.prototype_distances(proto, counts), ref.prototype_distances(proto, counts))


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


@pytest.mark.parametrize("form", ["paper", "official"])
def test_gradcheck_distances_and_loss(form):
    proto = torch.randn(2, 4, 5, dtype=D, requires_grad=True)
    counts = torch.tensor([[1.0, 0.0, 2.0, 3.0], [3.0, 4.0, 5.0, 0.5]], dtype=D)
    assert torch.autograd.gradcheck(lambda p: ck.prototype_distances(p, counts), (proto,))
    # counts get a gradient in the official form (prototype rescaling); presence is a step, so keep counts away from 0
    c = (counts + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, c: ck.inter_class_loss(p, c, form=form), (proto, c))
