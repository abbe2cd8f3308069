"""The layout a network runs in (nn/layout.py): channels-last-3d on the CPU, for networks without GroupNorm."""

import pytest
import torch
import torch.nn.functional as F

from cga_model.nn.checkpoint import load_model, save_checkpoint
from cga_model.nn.layout import fast_layout, to_fast_layout
from cga_model.nn.network import CGAUNet

CL = torch.channels_last_3d


def _pair(**options):
    torch.manual_seed(0)
    plain = CGAUNet(base_channels=8, **options)
    fast = CGAUNet(base_channels=8, **options)
    fast.load_state_dict(plain.state_dict())
    return plain, to_fast_layout(fast, "cpu")


@pytest.mark.parametrize("norm, layout", [("bn", CL), ("gn", torch.contiguous_format), ("in", torch.contiguous_format)])
def test_only_a_cpu_network_without_groupnorm_or_instancenorm_runs_channels_last(norm, layout):
    network = CGAUNet(base_channels=8, norm=norm)
    assert fast_layout(network, "cpu") is layout
    assert fast_layout(network, torch.device("cuda", 0)) is torch.contiguous_format
    weight = to_fast_layout(network, "cpu").init_conv.conv.weight
    assert weight.is_contiguous(memory_format=layout) and weight.is_contiguous() is (layout != CL)


@pytest.mark.parametrize("mean", [10.0, 100.0])
def test_channels_last_groupnorm_on_the_cpu_is_why_groupnorm_networks_stay_contiguous(mean):
    x = torch.randn(1, 16, 32, 32, 32) + mean
    exact = F.group_norm(x.double(), 8).float()
    contiguous_error = (F.group_norm(x, 8) - exact).abs().max()
    channels_last_error = (F.group_norm(x.contiguous(memory_format=CL), 8) - exact).abs().max()
    assert contiguous_error < 1e-4 < channels_last_error  # if this fails, PyTorch's kernel was mended


def test_a_channels_last_network_gives_the_same_outputs_and_gradients():
    plain, fast = _pair(norm="bn", dropout=0.0)  # no random channel dropout: both passes see the same network
    assert fast.init_conv.conv.weight.is_contiguous(memory_format=CL)
    image = torch.randn(2, 4, 32, 32, 32)
    labels = torch.randint(0, 4, (2, 32, 32, 32))
    outputs = {}
    for name, net in (("plain", plain), ("fast", fast)):
        out = net(image)
        F.cross_entropy(out.logits, labels).backward()
        outputs[name] = out
    torch.testing.assert_close(outputs["fast"].logits, outputs["plain"].logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outputs["fast"].attention, outputs["plain"].attention, rtol=1e-4, atol=1e-4)
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_a_checkpoint_of_a_channels_last_network_loads_into_either_layout(tmp_path):
    from cga_model.inference.predictor import load_predictor

    plain, fast = _pair(norm="bn")
    save_checkpoint(tmp_path / "best.pt", model=fast.state_dict(), config={"model": fast.config.to_dict()})
    weights, _ = load_model(tmp_path / "best.pt")
    for (name, a), b in zip(plain.state_dict().items(), weights.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    loaded, _ = load_predictor(tmp_path / "best.pt")  # channels-last, its blocks fused for inference
    assert loaded.init_conv.conv.weight.is_contiguous(memory_format=CL)
    image = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(image).logits, plain.eval()(image).logits, rtol=1e-4, atol=1e-4)
    assert CGAUNet(base_channels=8, norm="bn").load_state_dict(fast.state_dict())  # and back into the contiguous
