"""prototype_scatter (cga::scatter_hard / scatter_soft, csrc/cpu/scatter.cpp) against cga_kernels.reference."""

import itertools

import pytest
import torch
from kernel_cases import KS, SHAPES, D, hard, make_inputs, soft

import cga_kernels as ck
from cga_kernels import reference as ref


@pytest.mark.parametrize("spatial,k,soft_mask", list(itertools.product(SHAPES, KS, [False, True])))
def test_forward_matches_reference(spatial, k, soft_mask):
    _, mask = make_inputs(spatial, k, soft_mask)
    proto = torch.randn(2, k, 6)
    torch.testing.assert_close(ck.prototype_scatter(proto, mask), ref.prototype_scatter(proto, mask))


def test_gradcheck_scatter():
    labels, w = hard(), soft()
    proto = torch.randn(2, 3, 4, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: ck.prototype_scatter(p, labels), (proto,))
    assert torch.autograd.gradcheck(lambda p, w: ck.prototype_scatter(p, w), (proto, w))
