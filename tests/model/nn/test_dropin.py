"""Category-guided attention added to other people's networks (MONAI 3-D UNet, a 2-D U-Net)."""

import io
import subprocess
import sys

import pytest
import torch

from cga_model.nn.dropin import CategoryGuidedAttention, guided_attention_losses
from cga_model.nn.losses import attention_loss
from examples import unet_2d


@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("head", ["input", "feature"])
def test_2d_unet_trains_and_attention_head_gets_gradients(mode, head):
    losses = unet_2d.train(steps=6, mode=mode, head=head)
    assert losses[-1] < losses[0]
    model = unet_2d.make_wrapped(mode, head)
    x, y = unet_2d.slices()
    result = model(x)
    assert (
        result.output.shape == (4, 4, 64, 64)
        and result.prototypes.shape == (4, 4, 64)
        and result.counts.shape == (4, 4)
    )
    assert result.attention.shape == (4, 4, 16, 16)  # both heads: rate 4 on the 64x64 input = the 16x16 bottleneck
    guided_attention_losses(result, y).attention.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    balanced = guided_attention_losses(result, y, attention="dice_ce").attention
    torch.testing.assert_close(balanced, attention_loss(result.attention, y, "dice_ce"))


def test_monai_3d_unet_trains():
    pytest.importorskip("monai", reason="MONAI is an optional extra (pip install .[monai]); make test installs it")
    from examples import monai_unet_3d

    losses = monai_unet_3d.train(steps=6)
    assert min(losses[3:]) < losses[0]
    model = monai_unet_3d.make_wrapped("soft")
    x, y = monai_unet_3d.synthetic_batch()
    result = model(x)
    assert result.attention.shape == (2, 4, 4, 4, 4) and result.prototypes.shape == (2, 4, 64)
    assert result.output.shape == (2, 4, 32, 32, 32)


def test_update_really_replaces_the_feature_map():
    host = unet_2d.UNet2D()
    wrapped = CategoryGuidedAttention(host, "bottleneck", 4, head="feature", feature_channels=64, spatial_dims=2)
    x = torch.randn(2, 4, 32, 32)
    plain = host(x)  # called outside the wrapper: untouched
    assert not torch.allclose(wrapped(x).output, plain)


def test_detach_removes_the_hook_and_returns_the_host():
    host = unet_2d.UNet2D()
    wrapped = CategoryGuidedAttention(host, "bottleneck", 4, head="feature", feature_channels=64, spatial_dims=2)
    hooked = dict(host.named_modules())["bottleneck"]
    assert len(hooked._forward_hooks) == 1
    assert wrapped.detach() is host and len(hooked._forward_hooks) == 0


def test_wrong_module_name_lists_close_names():
    with pytest.raises(ValueError, match=r"no submodule 'bottlenek'.*'bottleneck'"):
        CategoryGuidedAttention(unet_2d.UNet2D(), "bottlenek", 4, head="input", in_channels=4, rate=4, spatial_dims=2)


def test_unmatchable_feature_size_is_an_error():
    model = CategoryGuidedAttention(
        unet_2d.UNet2D(), "bottleneck", 4, head="input", in_channels=4, rate=8, spatial_dims=2
    )
    assert model(torch.randn(1, 4, 24, 24)).attention.shape[2:] == (3, 3)  # 3x3 vs a 6x6 feature map: resampled
    with pytest.raises(ValueError, match="cannot be matched"):
        model(torch.randn(1, 4, 20, 20))  # 3x3 attention vs a 5x5 feature map: no integer ratio


def test_bad_head_arguments():
    with pytest.raises(ValueError, match="needs in_channels and rate"):
        CategoryGuidedAttention(unet_2d.UNet2D(), "bottleneck", 4, head="input", spatial_dims=2)
    with pytest.raises(ValueError, match=r"attention_rate must be one of \[1, 2, 4, 8\]"):
        CategoryGuidedAttention(unet_2d.UNet2D(), "bottleneck", 4, head="input", in_channels=4, rate=3, spatial_dims=2)
    with pytest.raises(ValueError, match="needs feature_channels"):
        CategoryGuidedAttention(unet_2d.UNet2D(), "bottleneck", 4, head="feature", spatial_dims=2)


def test_state_dict_round_trip():
    model = unet_2d.make_wrapped().eval()
    x = torch.randn(2, 4, 32, 32)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = unet_2d.make_wrapped().eval()
    clone.load_state_dict(torch.load(buf, weights_only=True))
    a, b = model(x), clone(x)
    assert torch.equal(a.output, b.output) and torch.equal(a.attention, b.attention)


def test_cga_kernels_does_not_import_monai():
    code = "import sys, cga_kernels, cga_kernels.triton_ops; print('monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
