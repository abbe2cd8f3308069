"""cga_kernels.flops: the one FLOP formula per op agrees with FlopCounterMode on the reference
(the convention its docstring states) and serves FlopCounterMode for the compiled ops."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import cga_kernels as ck
from cga_kernels import flops
from cga_kernels import reference as ref

B, K, C, S = 2, 4, 8, (4, 5, 6)
N = 4 * 5 * 6


def counted(fn, mapping=None) -> int:
    with FlopCounterMode(display=False, custom_mapping=mapping or {}) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("soft", [False, True])
def test_formulas_are_what_flopcountermode_counts_on_the_reference(soft):
    x = torch.randn(B, C, *S)
    mask = torch.rand(B, K, *S) if soft else torch.randint(0, K, (B, *S))
    shape = dict(batch=B, classes=K, channels=C, voxels=N)
    assert counted(lambda: ref.prototype_pool(x, mask, K)) == flops.prototype_pool_flops(**shape) == 2 * B * K * C * N
    proto = torch.randn(B, K, C)
    assert counted(lambda: ref.prototype_scatter(proto, mask)) == flops.prototype_scatter_flops(**shape)
    # FlopCounterMode sees the two products; the residual add (B C N) is elementwise, outside its view
    assert counted(lambda: ref.intra_class_update(x, mask, K)) == flops.intra_class_update_flops(
        **shape, residual=False
    )
    assert flops.intra_class_update_flops(**shape) == 4 * B * K * C * N + B * C * N


@pytest.mark.parametrize("soft", [False, True])
def test_counter_mapping_counts_the_compiled_ops_with_the_same_formulas(soft):
    x = torch.randn(B, C, *S)
    mask = torch.rand(B, K, *S) if soft else torch.randint(0, K, (B, *S))
    shape = dict(batch=B, classes=K, channels=C, voxels=N)
    mapping = flops.flop_counter_mapping()
    assert counted(lambda: ck.intra_class_update(x, mask, K), mapping) == flops.intra_class_update_flops(**shape)
    assert counted(
        lambda: ck.intra_class_update(x, mask, K, residual=False), mapping
    ) == flops.intra_class_update_flops(**shape, residual=False)
    assert counted(lambda: ck.prototype_pool(x, mask, K), mapping) == flops.prototype_pool_flops(**shape)
    proto, counts = torch.randn(B, K, C), torch.ones(B, K)
    assert counted(lambda: ck.prototype_scatter(proto, mask), mapping) == flops.prototype_scatter_flops(**shape)
    assert counted(lambda: ck.prototype_distances(proto, counts), mapping) == flops.prototype_distances_flops(
        batch=B, classes=K, channels=C
    )
    assert flops.prototype_distances_flops(batch=B, classes=K, channels=C) == 3 * B * K * K * C


def test_formulas_take_keyword_arguments_only():
    with pytest.raises(TypeError):
        flops.intra_class_update_flops(B, K, C, N)
