"""prototype_pool (cga::pool_hard / pool_soft, csrc/cpu/pool.cpp) against cga_kernels.reference."""

import itertools

import pytest
import torch
from kernel_cases import KS, SHAPES, assert_close_all, feats, hard, make_inputs, soft

import cga_kernels as ck
from cga_kernels import reference as ref


@pytest.mark.parametrize("spatial,k,soft_mask", list(itertools.product(SHAPES, KS, [False, True])))
def test_forward_matches_reference(spatial, k, soft_mask):
    x, mask = make_inputs(spatial, k, soft_mask)
    assert_close_all(ck.prototype_pool(x, mask, num_classes=k), ref.prototype_pool(x, mask, num_classes=k))


def test_hard_counts_do_not_overflow_in_half():
    x = torch.randn(1, 2, 300, 300, dtype=torch.float16)
    labels = torch.zeros(1, 300, 300, dtype=torch.long)
    _, counts = ck.prototype_pool(x, labels, num_classes=1)
    assert counts.item() == 90000  # > float16 max 65504


def test_gradcheck_pool():
    x, labels, w = feats(), hard(), soft()
    assert torch.autograd.gradcheck(lambda x: ck.prototype_pool(x, labels, 3), (x,))
    assert torch.autograd.gradcheck(lambda x, w: ck.prototype_pool(x, w), (x, w))
