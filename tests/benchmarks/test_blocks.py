"""The comparison blocks and measures used by benchmarks/ are themselves correct."""

import torch

import cga_kernels as ck
from benchmarks.blocks import SAM, ContextPriorLayer, NonLocalBlock
from benchmarks.measure import flops_of, saved_bytes_of
from benchmarks.released import released_distance, released_intra_update, released_soft_update


def test_released_reimplementation_matches_reference_up_to_its_epsilon():
    x = torch.randn(2, 6, 5, 4, 3, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 5, 4, 3))
    y, proto = released_intra_update(x, labels, 4)
    y_ref, p_ref, counts = ck.reference.intra_class_update(x, labels, 4)
    scale = (counts / (counts + 1e-5)).unsqueeze(-1)
    torch.testing.assert_close(proto, p_ref * scale)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    w = torch.rand(2, 4, 5, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(
        released_soft_update(x, w)[0], ck.reference.intra_class_update(x, w)[0], rtol=1e-5, atol=1e-5
    )
    expected = ck.reference.inter_class_loss(p_ref, counts, form="official")  # rescales by c / (c + 1e-5) itself
    torch.testing.assert_close(10 * torch.log(100 / released_distance(p_ref * scale) + 1), expected)


def test_blocks_shapes_and_losses():
    x = torch.randn(1, 16, 4, 4, 4, requires_grad=True)
    assert NonLocalBlock(16)(x).shape == x.shape
    cp = ContextPriorLayer(16, (4, 4, 4))
    y, prior = cp(x)
    assert y.shape == x.shape and prior.shape == (1, 64, 64)
    loss = ContextPriorLayer.affinity_loss(prior, torch.randint(0, 3, (1, 4, 4, 4)), 3)
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None
    (feats, proto, counts), attention = SAM(4, 4, rate=8)(x, torch.randn(1, 4, 32, 32, 32))
    assert feats.shape == x.shape and attention.shape == (1, 4, 4, 4, 4)


def test_measures_on_a_known_conv():
    conv = torch.nn.Conv3d(2, 3, 1, bias=False)
    x = torch.randn(1, 2, 4, 4, 4, requires_grad=True)
    assert flops_of(conv, x) == 2 * 2 * 3 * 64  # one multiply-add per input channel, output channel and voxel
    assert saved_bytes_of(conv, x) == x.numel() * 4 + conv.weight.numel() * 4
    with torch.device("meta"):
        big = torch.nn.Conv3d(2, 3, 1, bias=False)
        xm = torch.randn(1, 2, 64, 64, 64, requires_grad=True)
    assert saved_bytes_of(big, xm) == xm.numel() * 4 + 6 * 4
