"""CGA U-Net: shapes, SAM wiring, ablations, parameter count from Table 1, gradients, determinism, compile."""

import io

import pytest
import torch

import cga_kernels as ck
from cga_model import CGALoss, CGAUNet
from cga_model.nn.attention import SAM, AttentionPath
from cga_model.nn.losses import attention_mse_loss, softmax_dice_loss

SIZES = [(32, 32, 32), (16, 32, 24)]


def small(**kw):
    kw.setdefault("base_channels", 4)
    return CGAUNet(**kw)


# --------------------------------------------------------------------------------------------
# shapes and dtypes


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("rate", [8, 4, 2])
def test_output_shapes_and_dtypes(size, rate):
    model = small(attention_rate=rate).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 4, *size))
    att = tuple(s // rate for s in size)
    assert out.logits.shape == (2, 4, *size) and out.logits.dtype == torch.float32
    assert out.attention.shape == (2, 4, *att) and out.attention.dtype == torch.float32
    channels = {8: 32, 4: 16, 2: 8}[rate]  # 8c, 4c, 2c with c = 4: the encoder level at 1/rate
    assert out.prototypes.shape == (2, 4, channels) and out.prototypes.dtype == torch.float32
    assert out.counts.shape == (2, 4) and out.counts.dtype == torch.float32
    # hard mode: every attention voxel is counted in exactly one class
    torch.testing.assert_close(out.counts.sum(1), torch.full((2,), float(torch.tensor(att).prod())))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_soft_mode_and_float64_outputs(size):
    model = small(mask_mode="soft").double().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 4, *size, dtype=torch.float64))
    assert out.logits.dtype == out.attention.dtype == out.prototypes.dtype == out.counts.dtype == torch.float64
    n_att = torch.tensor(size).prod().item() // 8**3
    torch.testing.assert_close(
        out.counts.sum(1), torch.full((1,), float(n_att), dtype=torch.float64)
    )  # softmax sums to 1


def test_logits_are_pre_softmax():
    out = small().eval()(torch.randn(1, 4, 16, 16, 16))
    assert (out.logits < 0).any() and not torch.allclose(out.logits.sum(1), torch.ones(1))


# --------------------------------------------------------------------------------------------
# the SAM: where it sits, and that it is cga_kernels.IntraClassUpdate


@pytest.mark.parametrize(
    "rate,level,skip_consumer,next_consumer",
    [(8, "en_block4", "de_up3", None), (4, "en_block3", "de_up3", "en_down3"), (2, "en_block2", "de_up2", "en_down2")],
)
def test_sam_applies_the_kernel_update_at_the_matching_level(rate, level, skip_consumer, next_consumer):
    model = small(attention_rate=rate).eval()
    assert isinstance(model.sam.update, ck.IntraClassUpdate)
    seen = {}
    getattr(model, level).register_forward_hook(lambda m, a, out: seen.__setitem__("level", out))
    model.sam.register_forward_hook(lambda m, a, out: seen.__setitem__("sam", out))
    # DeUp(x, skip): at rate 8 the updated bottleneck is the decoder input, else the skip of its level
    getattr(model, skip_consumer).register_forward_pre_hook(
        lambda m, a: seen.__setitem__("decoder", a[0] if rate == 8 else a[1])
    )
    if next_consumer:
        getattr(model, next_consumer).register_forward_pre_hook(lambda m, a: seen.__setitem__("next", a[0]))
    with torch.no_grad():
        out = model(torch.randn(2, 4, 32, 32, 32))
    feats, sam = seen["level"], seen["sam"]
    assert feats.shape[2:] == out.attention.shape[2:]
    mask = out.attention.argmax(1)
    y, proto, counts = ck.reference.intra_class_update(feats, mask, num_classes=4)
    torch.testing.assert_close(sam.features, y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.prototypes, proto, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.counts, counts.float())
    assert torch.equal(seen["decoder"], sam.features)  # the updated map feeds the decoder ...
    if next_consumer:
        assert torch.equal(seen["next"], sam.features)  # ... and continues down the encoder


def test_intra_classes_restrict_the_update():
    model = small(intra_classes=[3]).eval()
    assert model.sam.update.classes == (3,)
    seen = {}
    model.en_block4.register_forward_hook(lambda m, a, out: seen.__setitem__("x", out))
    model.sam.register_forward_hook(lambda m, a, out: seen.__setitem__("y", out.features))
    with torch.no_grad():
        out = model(torch.randn(1, 4, 32, 32, 32))
    y_ref, _, _ = ck.reference.intra_class_update(seen["x"], out.attention.argmax(1), num_classes=4, classes=[3])
    torch.testing.assert_close(seen["y"], y_ref, rtol=1e-5, atol=1e-5)
    untouched = out.attention.argmax(1) != 3
    assert torch.equal(seen["y"].movedim(1, -1)[untouched], seen["x"].movedim(1, -1)[untouched])


# --------------------------------------------------------------------------------------------
# baseline vs CGA


def test_relu_attention_path_is_the_linear_one_with_a_relu_between_the_convolutions():
    torch.manual_seed(0)
    linear, relu = CGAUNet(base_channels=4), CGAUNet(base_channels=4, attention_path="relu")
    relu.load_state_dict(linear.state_dict())  # the same parameters: the ReLU adds none
    path, image = linear.sam.attention_path, torch.randn(2, 4, 16, 16, 16)
    expected = path.conv3(path.conv2(path.conv1(image).relu()).relu())
    torch.testing.assert_close(relu.sam.attention_path(image), expected)
    assert not torch.allclose(linear.sam.attention_path(image), expected)


@pytest.mark.parametrize("rate, level", [(8, 8), (4, 4), (2, 2)])
def test_feature_attention_is_a_1x1_convolution_of_the_features_it_updates(rate, level):
    torch.manual_seed(0)
    model = CGAUNet(base_channels=4, attention_path="features", attention_rate=rate)
    seen = {}
    model.sam.register_forward_hook(lambda module, args, out: seen.update(features=args[0]))
    image, labels = torch.randn(2, 4, 16, 16, 16), torch.randint(0, 4, (2, 16, 16, 16))
    out = model(image)
    assert seen["features"].shape == (2, 4 * level, *(16 // rate,) * 3)  # EnBlock's output: 2c, 4c or 8c
    torch.testing.assert_close(out.attention, model.sam.attention_path.conv(seen["features"]))
    assert sum(p.numel() for p in model.sam.parameters()) == 4 * level * 4 + 4
    # the attention loss reaches the encoder that made the features (the image path's never does)
    attention_mse_loss(out.attention, labels).backward()
    assert model.en_down1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="feature_channels"):
        SAM(4, 4, path="features")


def test_the_image_path_refuses_the_feature_kind():
    with pytest.raises(ValueError, match="'features'.*FeatureAttention"):
        AttentionPath(4, 4, kind="features")
    with pytest.raises(ValueError, match="got 'tanh'"):
        AttentionPath(4, 4, kind="tanh")


def test_baseline_differs_only_by_the_sam():
    cga, base = small().state_dict(), small(sam=False).state_dict()
    extra = set(cga) - set(base)
    assert extra and all(k.startswith("sam.attention_path.") for k in extra)
    assert set(base) <= set(cga) and all(cga[k].shape == base[k].shape for k in base)
    out = small(sam=False)(torch.randn(1, 4, 16, 16, 16))
    assert out.attention is None and out.prototypes is None and out.counts is None


def test_sam_without_update_leaves_the_baseline_output_unchanged():
    """Same weights: a SAM with the update off only adds the attention branch; with it on, logits change."""
    x = torch.randn(1, 4, 32, 32, 32)
    cga = small().eval()
    base, no_update = small(sam=False).eval(), small(intra=False).eval()
    base.load_state_dict(cga.state_dict(), strict=False)
    no_update.load_state_dict(cga.state_dict())
    with torch.no_grad():
        a, b, c = base(x), no_update(x), cga(x)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    assert b.prototypes is not None  # pooled without update, for "Baseline + Inter"
    assert not torch.allclose(a.logits, c.logits)


def test_update_gate_starts_as_the_baseline_and_learns():
    """A zero gate gives the logits of the same weights without the update; the gate gets a gradient."""
    x = torch.randn(2, 4, 32, 32, 32)
    gated = small(update_gate=True).eval()
    base = small(sam=False).eval()
    base.load_state_dict(gated.state_dict(), strict=False)
    assert gated.sam.gate.item() == 0 and "sam.gate" in gated.state_dict()
    with torch.no_grad():
        torch.testing.assert_close(gated(x).logits, base(x).logits, rtol=0, atol=0)
    gated.train()
    CGALoss()(gated(x), torch.randint(0, 4, (2, 32, 32, 32)), epoch=0).total.backward()
    assert gated.sam.gate.grad is not None and gated.sam.gate.grad.abs() > 0
    with torch.no_grad():
        gated.sam.gate.fill_(1.0)
    paper = small().eval()
    paper.load_state_dict({k: v for k, v in gated.state_dict().items() if k != "sam.gate"})
    with torch.no_grad():
        torch.testing.assert_close(gated.eval()(x).logits, paper(x).logits)  # g = 1 is the paper's update
    assert "gate" not in dict(small(update_gate=True, intra=False).named_parameters())  # no update, no gate


# --------------------------------------------------------------------------------------------
# parameter count


def test_parameter_count_from_table1():
    """Derived from Table 1's layer shapes (c = 16, 4 input channels, K = 4), by explicit arithmetic.

    conv3(i, o) = 27 i o + o; conv1(i, o) = i o + o; convT2(i, o) = 8 i o + o; each norm 2 C (affine).
    """
    res16 = 2 * (27 * 16 * 16 + 16) + 2 * (2 * 16)  # 13,920: ResBlock(16) = 2 conv3 + 2 norms
    res32 = 2 * (27 * 32 * 32 + 32) + 2 * (2 * 32)  # 55,488
    res64 = 2 * (27 * 64 * 64 + 64) + 2 * (2 * 64)  # 221,568
    res128 = 2 * (27 * 128 * 128 + 128) + 2 * (2 * 128)  # 885,504
    encoder = (
        (27 * 4 * 16 + 16)  # InitConv 4 -> 16: 1,744
        + res16  # EnBlock1
        + (27 * 16 * 32 + 32)  # EnDown1: 13,856
        + 2 * res32  # EnBlock2 x2
        + (27 * 32 * 64 + 64)  # EnDown2: 55,360
        + 2 * res64  # EnBlock3 x2
        + (27 * 64 * 128 + 128)  # EnDown3: 221,312
        + 4 * res128  # EnBlock4 x4
    )
    deup3 = (128 * 64 + 64) + (8 * 64 * 64 + 64) + (128 * 64 + 64)  # 1x1 128->64, convT 64->64, 1x1 (64+64)->64
    deup2 = (64 * 32 + 32) + (8 * 32 * 32 + 32) + (64 * 32 + 32)
    deup1 = (32 * 16 + 16) + (8 * 16 * 16 + 16) + (32 * 16 + 16)
    decoder = deup3 + res64 + deup2 + res32 + deup1 + res16 + (16 * 4 + 4)  # ... + EndConv 1x1 16 -> 4
    attention = (27 * 4 * 16 + 16) + (27 * 16 * 16 + 16) + (27 * 16 * 4 + 4)  # AttConv1..3
    assert (res16, res32, res64, res128) == (13_920, 55_488, 221_568, 885_504)
    assert encoder == 4_402_320 and decoder == 355_892 and attention == 10_404
    # the released network has 4,768,617 parameters: ours plus one scalar its forward never uses
    assert encoder + decoder + attention == 4_768_617 - 1 == 4_768_616

    def n(module):
        return sum(p.numel() for p in module.parameters())

    model = CGAUNet()
    assert n(model) == 4_768_616 and n(model.sam) == attention
    assert n(CGAUNet(sam=False)) == encoder + decoder
    for norm in ("bn", "in"):
        assert n(CGAUNet(norm=norm)) == 4_768_616
    for rate in (4, 2):  # rates 4 and 2 change strides, not weights
        assert n(CGAUNet(attention_rate=rate).sam) == attention


# --------------------------------------------------------------------------------------------
# gradients


def _grads(model, loss_fn, size=(16, 16, 16)):
    x, labels = torch.randn(2, 4, *size), torch.randint(0, 4, (2, *size))
    loss = loss_fn(model(x), labels)
    params = list(model.sam.attention_path.parameters())
    return [g for g in torch.autograd.grad(loss, params, allow_unused=True)]


def _nonzero(grads):
    return all(g is not None and g.abs().sum() > 0 for g in grads)


def _absent(grads):
    return all(g is None or g.abs().sum() == 0 for g in grads)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_attention_mse_reaches_the_attention_path(mode):
    assert _nonzero(_grads(small(mask_mode=mode), lambda o, y: attention_mse_loss(o.attention, y)))


def test_main_loss_reaches_the_attention_path_only_in_soft_mode():
    def dice(o, y):
        return softmax_dice_loss(o.logits, y)

    assert _absent(_grads(small(mask_mode="hard"), dice))  # argmax: no gradient through the update
    assert _nonzero(_grads(small(mask_mode="soft"), dice))  # softmax weights: gradient through the update


def test_inter_loss_reaches_the_encoder():
    model = small()
    out = model(torch.randn(2, 4, 16, 16, 16))
    loss = CGALoss(inter_start_epoch=0, inter_weight=1.0)
    terms = loss(out, torch.randint(0, 4, (2, 16, 16, 16)), epoch=0)
    (g,) = torch.autograd.grad(terms.inter, [model.en_block4[-1].conv2.weight])
    assert g.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# ablations


ABLATIONS = [
    {},
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
    {"mask_mode": "soft", "attention_rate": 2},
    {"norm": "bn"},
    {"norm": "in"},
]


@pytest.mark.parametrize("config", ABLATIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_ablation_trains_one_step(config):
    model = small(**config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, labels = torch.randn(2, 4, 16, 16, 16), torch.randint(0, 4, (2, 16, 16, 16))
    terms = CGALoss(inter_start_epoch=0)(model(x), labels, epoch=0)
    assert torch.isfinite(terms.total)
    terms.total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    sam, inter = config.get("sam", True), config.get("inter", True)
    assert (terms.attention.item() != 0) == sam
    assert terms.inter.requires_grad == (sam and inter)  # the inter term is in the graph only when on


def test_sync_bn_builds_and_runs_without_process_group():
    model = small(norm="sync_bn").train()
    out = model(torch.randn(2, 4, 16, 16, 16))
    assert isinstance(model.en_block1.norm1, torch.nn.SyncBatchNorm) and out.logits.shape == (2, 4, 16, 16, 16)


# --------------------------------------------------------------------------------------------
# state dict, eval determinism, dropout


def test_state_dict_round_trip_gives_identical_eval_outputs():
    model = small().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # move weights off their initial values
    CGALoss()(model(torch.randn(2, 4, 16, 16, 16)), torch.randint(0, 4, (2, 16, 16, 16)), epoch=0).total.backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = small()
    clone.load_state_dict(torch.load(buf, weights_only=True))
    model.eval(), clone.eval()
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.no_grad():
        a, b = model(x), clone(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_eval_is_deterministic_and_dropout_is_channelwise_in_training():
    model = small(dropout=0.5)
    x = torch.randn(1, 4, 16, 16, 16)
    assert isinstance(model.init_conv.dropout, torch.nn.Dropout3d)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).logits, model(x).logits), "eval() must switch the input dropout off"
        model.train()
        assert not torch.equal(model(x).logits, model(x).logits)
        dropped = model.init_conv(x)  # whole channels are zeroed
        zero = dropped.flatten(2).eq(0).all(-1)
        assert zero.any() and (dropped.flatten(2).eq(0).any(-1) == zero).all()


# --------------------------------------------------------------------------------------------
# errors


def test_bad_inputs_and_arguments_raise_clear_errors():
    model = small()
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 4, 16, 12, 16))
    with pytest.raises(ValueError, match="expects 4"):
        model(torch.randn(1, 3, 16, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        model(torch.randn(4, 16, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 4, 16, 16, 16, dtype=torch.long))
    for kwargs, match in [
        ({"attention_rate": 3}, "attention_rate must be one of"),
        ({"norm": "ln"}, "norm must be one of"),
        ({"mask_mode": "fuzzy"}, "mask_mode must be one of"),
        ({"mask_mode": "fuzzy", "sam": False}, "mask_mode must be one of"),
        ({"intra_classes": [4]}, "intra_classes must be"),
        ({"intra_classes": []}, "intra_classes must be"),
        ({"intra_classes": [1], "intra": False}, "intra_classes needs intra=True"),
        ({"base_channels": 0}, "base_channels must be a positive int"),
        ({"dropout": 1.0}, "dropout must be in"),
    ]:
        with pytest.raises(ValueError, match=match):
            small(**kwargs)


# --------------------------------------------------------------------------------------------
# torch.compile


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
def test_torch_compile_model():
    model = small().eval()
    x = torch.randn(1, 4, 16, 16, 16)
    compiled = torch.compile(model)
    with torch.no_grad():
        got, want = compiled(x), model(x)
    for u, v in zip(got, want):
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------
# model card (meta device: shapes only, fast)


def test_model_card_counts_at_128():
    from cga_kernels.flops import intra_class_update_flops
    from cga_model.model_card import count, table

    cga, base = count({}), count({"sam": False})
    assert cga["params"] == 4_768_616 and cga["sam_params"] == 10_404 and base["params"] == 4_758_212
    # convolutions: 303.09 GFLOPs = 151.55 G multiply-adds, as for the released network; the update adds
    # cga_kernels.flops' 4 B K C N + B C N = 8,912,896 FLOPs at the 128 x 16^3 bottleneck
    assert cga["cga_op_flops"] == intra_class_update_flops(batch=1, classes=4, channels=128, voxels=16**3) == 8_912_896
    assert cga["flops"] - cga["cga_op_flops"] == 303_094_562_816
    assert round(cga["macs"] / 1e9, 2) == 151.55
    assert cga["flops"] - base["flops"] == cga["sam_flops"]
    assert "| baseline U-Net (sam=False) | 4,758,212 |" in table(size=(16, 16, 16))
