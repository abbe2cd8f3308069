"""torch.library.opcheck of every low-level cga:: op (schemas: cga_kernels/ops/<op>.py).
The float64 gradchecks of the public ops are in tests/test_<op>.py."""

import pytest
import torch
from kernel_cases import hard

import cga_kernels  # noqa: F401  (registers the cga:: ops)


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
    torch.library.opcheck(
        torch.ops.cga.intra_update_soft_backward.default, (g, gp, torch.randn(2, 3), x, w, act, p, counts, True)
    )
    proto = torch.randn(2, 3, 4)
    dist = torch.ops.cga.pair_distances(proto, torch.ones(2, 3, dtype=torch.bool))
    torch.library.opcheck(torch.ops.cga.pair_distances_backward.default, (torch.randn(2, 3, 3), proto, dist))
