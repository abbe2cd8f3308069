"""CGA U-Net: shapes, ablations, parameter count from Table 1, gradients, determinism, compile."""

import io

import pytest
import torch

from cga_model import CGALoss, CGAUNet


def small(**kw):
    kw.setdefault("base_channels", 8)
    return CGAUNet(**kw)


@pytest.mark.parametrize("size", [(16, 16, 16), (16, 32, 24)])
@pytest.mark.parametrize("rate", [8, 4, 2])
def test_output_shapes(size, rate):
    model = small(attention_rate=rate).eval()
    out = model(torch.randn(2, 4, *size))
    assert out.logits.shape == (2, 4, *size) and out.logits.dtype == torch.float32
    assert out.attention.shape == (2, 4, *(s // rate for s in size))
    channels = {8: 64, 4: 32, 2: 16}[rate]  # 8c, 4c, 2c with c = 8
    assert out.prototypes.shape == (2, 4, channels)
    assert out.counts.shape == (2, 4)
    torch.testing.assert_close(out.counts.sum(1), torch.full((2,), float(torch.tensor(size).prod() // rate**3)))


def test_baseline_differs_only_by_sam():
    cga, base = small().state_dict(), small(sam=False).state_dict()
    extra = set(cga) - set(base)
    assert extra and all(k.startswith("attention_path.") for k in extra)
    assert set(base) <= set(cga)
    out = small(sam=False)(torch.randn(1, 4, 16, 16, 16))
    assert out.attention is None and out.prototypes is None and out.counts is None


def test_parameter_count_from_table1():
    """Derived by hand from Table 1's layer shapes (c = 16, GroupNorm affine), not from the model."""
    conv3 = lambda i, o: i * o * 27 + o  # noqa: E731
    conv1 = lambda i, o: i * o + o  # noqa: E731
    convt = lambda i, o: i * o * 8 + o  # noqa: E731
    block = lambda c: 2 * conv3(c, c) + 2 * 2 * c  # noqa: E731  two convs + two affine norms
    up = lambda i, o: conv1(i, o) + convt(o, o) + conv1(2 * o, o)  # noqa: E731
    encoder = conv3(4, 16) + block(16) + conv3(16, 32) + 2 * block(32) + conv3(32, 64) + 2 * block(64) + conv3(64, 128) + 4 * block(128)
    decoder = up(128, 64) + block(64) + up(64, 32) + block(32) + up(32, 16) + block(16) + conv1(16, 4)
    attention = conv3(4, 16) + conv3(16, 16) + conv3(16, 4)
    assert attention == 10_404
    assert encoder + decoder + attention == 4_768_617 - 1  # the released net has one unused scalar parameter
    assert sum(p.numel() for p in CGAUNet().parameters()) == encoder + decoder + attention
    assert sum(p.numel() for p in CGAUNet(sam=False).parameters()) == encoder + decoder


def _attention_grad(model, loss_fn):
    x = torch.randn(1, 4, 16, 16, 16)
    labels = torch.randint(0, 4, (1, 16, 16, 16))
    loss_fn(model(x), labels).backward()
    return model.attention_path.conv1.weight.grad


def test_gradients_reach_attention_path():
    from cga_model.losses import attention_mse_loss, softmax_dice_loss

    hard, soft = small(mask_mode="hard"), small(mask_mode="soft")
    assert _attention_grad(hard, lambda o, y: attention_mse_loss(o.attention, y)).abs().sum() > 0
    # the Dice loss reaches the attention path only through the (soft) update
    assert _attention_grad(small(mask_mode="hard"), lambda o, y: softmax_dice_loss(o.logits, y) + 0 * o.attention.sum()).abs().sum() == 0
    assert _attention_grad(soft, lambda o, y: softmax_dice_loss(o.logits, y)).abs().sum() > 0


ABLATIONS = [
    {"sam": False},
    {"intra": False},
    {"intra": False, "inter": False},
    {"inter": False},
    {"intra_classes": [0]},
    {"intra_classes": [1]},
    {"intra_classes": [3]},
    {"attention_rate": 4},
    {"attention_rate": 2},
    {"mask_mode": "soft"},
    {"norm": "bn"},
    {"norm": "in"},
]


@pytest.mark.parametrize("config", ABLATIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_ablation_trains_one_step(config):
    torch.manual_seed(0)
    model = small(base_channels=4, **config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, labels = torch.randn(2, 4, 16, 16, 16), torch.randint(0, 4, (2, 16, 16, 16))
    terms = CGALoss(inter_start_epoch=0)(model(x), labels, epoch=0)
    terms.total.backward()
    assert torch.isfinite(terms.total)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    if config.get("inter", True) and config.get("sam", True):
        assert terms.inter != 0


def test_state_dict_round_trip_and_eval_determinism():
    model = small().eval()
    x = torch.randn(1, 4, 16, 16, 16)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = small().eval()
    clone.load_state_dict(torch.load(buf, weights_only=True))
    a, b = model(x), clone(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.attention, b.attention)
    assert torch.equal(model(x).logits, a.logits), "eval() must switch the input dropout off"


def test_dropout_active_in_training():
    model = small(dropout=0.5).train()
    x = torch.randn(1, 4, 16, 16, 16)
    assert not torch.equal(model(x).logits, model(x).logits)


def test_bad_input_size_and_channels():
    model = small()
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 4, 16, 12, 16))
    with pytest.raises(ValueError, match="expects 4"):
        model(torch.randn(1, 3, 16, 16, 16))
    with pytest.raises(ValueError, match="attention_rate must be one of"):
        CGAUNet(attention_rate=3)
    with pytest.raises(ValueError, match="norm must be one of"):
        CGAUNet(norm="ln")


def test_torch_compile_model():
    model = small(base_channels=4).eval()
    x = torch.randn(1, 4, 16, 16, 16)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x).logits, model(x).logits, rtol=1e-4, atol=1e-4)
