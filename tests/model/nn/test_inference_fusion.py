"""Inference-only fusion of BatchNorm residual blocks (nn/inference_fusion.py): the same outputs, fewer passes."""

import copy

import pytest
import torch

from cga_model.nn.blocks import ResBlock, UpBlock
from cga_model.nn.inference_fusion import FusedResBlock, FusedUpBlock, fold_norm, for_inference, fuse_blocks
from cga_model.nn.network import CGAUNet

CL = torch.channels_last_3d


def _trained_stats(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` with BatchNorm statistics and affine parameters far from their initial values."""
    generator = torch.Generator().manual_seed(1)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            for tensor, low, high in ((module.running_mean, -2, 2), (module.running_var, 0.2, 3.0)):
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.5, 0.5, generator=generator)
    return network.eval()


def test_fold_norm_is_the_convolution_then_the_norm():
    block = _trained_stats(ResBlock(8))
    x = torch.randn(2, 8, 6, 6, 6)
    weight, bias = fold_norm(block.conv1, block.norm2)
    folded = torch.nn.functional.conv3d(x, weight, bias, padding=1)
    torch.testing.assert_close(folded, block.norm2(block.conv1(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_a_fused_block_computes_the_block(layout):
    block = _trained_stats(ResBlock(16)).to(memory_format=layout)
    x = torch.randn(2, 16, 8, 12, 8).contiguous(memory_format=layout)
    with torch.no_grad():
        expected = block(x.clone())
        fused = FusedResBlock(block)(x)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_a_fused_network_gives_the_network_s_outputs():
    torch.manual_seed(0)
    plain = _trained_stats(CGAUNet(base_channels=8))
    fused = for_inference(copy.deepcopy(plain), "cpu")
    assert sum(isinstance(m, FusedResBlock) for m in fused.modules()) == 12  # every ResBlock of the U-Net
    assert sum(isinstance(m, FusedUpBlock) for m in fused.modules()) == 3
    x = torch.randn(1, 4, 32, 32, 24)
    with torch.no_grad():
        expected, got = plain(x), fused(x)
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.logits.argmax(1), expected.logits.argmax(1))


def test_a_fused_network_under_bfloat16_autocast_stays_close_to_the_unfused_one():
    torch.manual_seed(0)
    plain = _trained_stats(CGAUNet(base_channels=8))
    fused = for_inference(copy.deepcopy(plain), "cpu")
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = plain(x).logits.float(), fused(x).logits.float()
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_a_fused_up_block_computes_the_block(layout):
    torch.manual_seed(0)
    block = UpBlock(16, 8).eval().to(memory_format=layout)
    x = torch.randn(2, 16, 4, 6, 4).contiguous(memory_format=layout)
    skip = torch.randn(2, 8, 8, 12, 8).contiguous(memory_format=layout)
    with torch.no_grad():
        torch.testing.assert_close(FusedUpBlock(block)(x, skip), block(x, skip), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["gn", "in"])
def test_groupnorm_and_instancenorm_residual_blocks_are_left_as_they_are(norm):
    torch.manual_seed(0)
    plain = CGAUNet(base_channels=8, norm=norm).eval()
    network = for_inference(copy.deepcopy(plain), "cpu")
    assert not any(isinstance(m, FusedResBlock) for m in network.modules())
    assert sum(isinstance(m, FusedUpBlock) for m in network.modules()) == 3
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(network(x).logits, plain(x).logits, rtol=1e-4, atol=1e-4)


def test_other_devices_and_cpus_without_onednn_are_left_as_they_are(monkeypatch):
    assert fuse_blocks(CGAUNet(base_channels=8).eval()) == 15
    fused_kinds = (FusedResBlock, FusedUpBlock)
    meta = for_inference(CGAUNet(base_channels=8).to("meta"), "meta")
    assert not any(isinstance(m, fused_kinds) for m in meta.modules())
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    network = for_inference(CGAUNet(base_channels=8), "cpu")
    assert not any(isinstance(m, fused_kinds) for m in network.modules())


def test_fused_blocks_refuse_training():
    with pytest.raises(ValueError, match="eval"):
        fuse_blocks(CGAUNet(base_channels=8))
    network = for_inference(CGAUNet(base_channels=8), "cpu").train()
    with pytest.raises(RuntimeError, match="inference"):
        network(torch.randn(1, 4, 16, 16, 16))
