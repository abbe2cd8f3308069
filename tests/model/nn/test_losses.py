"""Losses: Dice rules, attention target, inter-class term (start epoch, sign, forms), weights, label mapping."""

import pytest
import torch
import torch.nn.functional as F

import cga_kernels as ck
from cga_model import CGALoss, CGAOutput
from cga_model.nn.losses import (
    attention_loss,
    attention_mse_loss,
    dice_ce_loss,
    downsample_labels,
    inter_class_term,
    one_hot,
    softmax_dice_loss,
)


def perfect_output(labels, rate=2, channels=8):
    logits = one_hot(labels, 4) * 50.0
    attention = one_hot(downsample_labels(labels, [s // rate for s in labels.shape[1:]]), 4)
    proto = torch.randn(labels.shape[0], 4, channels, requires_grad=True)
    return CGAOutput(logits, attention, proto, torch.ones(labels.shape[0], 4))


# --------------------------------------------------------------------------------------------
# Dice


def test_perfect_prediction_has_near_zero_loss():
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    terms = CGALoss(inter_start_epoch=20)(perfect_output(labels), labels, epoch=0)
    assert terms.total.item() < 1e-4 and terms.dice.item() < 1e-4 and terms.attention.item() == 0
    assert all(t.dtype == torch.float32 and t.dim() == 0 for t in terms)


def test_dice_empty_class_rules():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    # absent from target and prediction: dice 1, loss 0 (for each of the three tumour classes)
    assert softmax_dice_loss(one_hot(labels, 4) * 50, labels).item() < 1e-4
    # absent from the target but predicted everywhere (class 1): loss ~1 for that class
    wrong = torch.ones_like(labels)
    torch.testing.assert_close(softmax_dice_loss(one_hot(wrong, 4) * 50, labels), torch.tensor(1.0), atol=1e-4, rtol=0)
    # uniform prediction: P_k = 1/4 everywhere, half the voxels class 1: dice = 2 * (32/4) / (64/4 + 32)
    labels[:, :2] = 1
    expected = (1 - 16 / 48) + 2 * 1.0  # classes 2 and 3 absent from the target but predicted at 1/4: dice ~0
    torch.testing.assert_close(
        softmax_dice_loss(torch.zeros(1, 4, 4, 4, 4), labels), torch.tensor(expected), atol=1e-5, rtol=0
    )


def test_dice_matches_monai():
    monai = pytest.importorskip("monai.losses")
    logits, labels = torch.randn(2, 4, 8, 8, 8), torch.randint(0, 4, (2, 8, 8, 8))
    oracle = monai.DiceLoss(
        include_background=False,
        softmax=True,
        to_onehot_y=True,
        batch=True,
        smooth_nr=1e-5,
        smooth_dr=1e-5,
        reduction="sum",
    )
    torch.testing.assert_close(softmax_dice_loss(logits, labels), oracle(logits, labels[:, None]), rtol=1e-5, atol=1e-6)


def test_dice_is_computed_in_float32_for_half_logits():
    logits, labels = torch.randn(1, 4, 8, 8, 8), torch.randint(0, 4, (1, 8, 8, 8))
    got = softmax_dice_loss(logits.bfloat16(), labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, softmax_dice_loss(logits.bfloat16().float(), labels))


# --------------------------------------------------------------------------------------------
# attention MSE


def test_attention_target_is_the_first_voxel_of_each_block():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 0, 0, 0] = 3  # the first voxel of the first 2-block: nearest picks it
    labels[0, 1, 1, 1] = 2  # not the first voxel of its block: ignored
    small = downsample_labels(labels, (2, 2, 2))
    assert small[0, 0, 0, 0] == 3 and small.sum() == 3
    attention = torch.zeros(1, 4, 2, 2, 2)
    expected = ((one_hot(small, 4) - attention) ** 2).mean()
    torch.testing.assert_close(attention_mse_loss(attention, labels), expected)
    torch.testing.assert_close(expected, torch.tensor(8 / 32))  # one 1 per voxel, 8 voxels x 4 classes


@pytest.mark.parametrize("size", [(4, 8, 6), (3, 5, 4)])  # exact rates (strided slice) and inexact (interpolate)
def test_downsample_labels_matches_interpolate_nearest(size):
    labels = torch.randint(0, 4, (2, 16, 32, 24))
    expected = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    got = downsample_labels(labels, size)
    assert torch.equal(got, expected) and got.dtype == labels.dtype


def test_attention_mse_gradient_and_errors():
    labels = torch.randint(0, 4, (2, 16, 16, 16))
    attention = torch.randn(2, 4, 2, 2, 2, requires_grad=True)
    loss = attention_mse_loss(attention, labels)
    (g,) = torch.autograd.grad(loss, attention)
    target = one_hot(labels[:, ::8, ::8, ::8], 4)
    torch.testing.assert_close(g, 2 * (attention - target).detach() / attention.numel())
    with pytest.raises(ValueError, match="class indices in"):
        attention_mse_loss(attention, labels + 4)
    with pytest.raises(ValueError, match="spatial rank"):
        attention_mse_loss(attention, labels[0])
    with pytest.raises(TypeError, match="integer tensor"):
        softmax_dice_loss(torch.randn(2, 4, 16, 16, 16), labels.float())
    with pytest.raises(ValueError, match="must have shape"):
        softmax_dice_loss(torch.randn(1, 4, 16, 16, 16), labels)


def test_attention_dice_ce_is_the_segmentation_form_on_the_guided_map():
    labels = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    labels[:, 8:, 8:, 8:] = 3  # one 8-block of 8 is tumour: its argmax is what the update needs
    attention = torch.randn(2, 4, 2, 2, 2, requires_grad=True)
    small = labels[:, ::8, ::8, ::8]
    torch.testing.assert_close(attention_loss(attention, labels, "dice_ce"), dice_ce_loss(attention, small))
    torch.testing.assert_close(attention_loss(attention, labels, "mse"), attention_mse_loss(attention, labels))
    # the tumour voxel weighs as much as the seven background voxels together (Dice), unlike the mean MSE
    (g,) = torch.autograd.grad(attention_loss(attention, labels, "dice_ce"), attention)
    tumour, background = g[:, 3, 1, 1, 1].abs().mean(), g[:, 3, 0, 0, 0].abs().mean()
    assert tumour > background
    total = CGALoss(attention_loss="dice_ce")(perfect_output(labels, rate=8), labels, epoch=0)
    torch.testing.assert_close(total.attention, dice_ce_loss(perfect_output(labels, rate=8).attention, small))
    with pytest.raises(ValueError, match="attention_loss must be one of"):
        attention_loss(attention, labels, "ce")
    with pytest.raises(ValueError, match="spatial rank"):
        attention_loss(attention, labels[0], "dice_ce")


# --------------------------------------------------------------------------------------------
# inter-class term and CGALoss


def test_inter_term_is_inactive_and_out_of_the_graph_before_its_start_epoch():
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    out = perfect_output(labels)
    loss = CGALoss(inter_weight=0.5, inter_start_epoch=3)
    before = loss(out, labels, epoch=2)
    assert before.inter.item() == 0 and not before.inter.requires_grad
    assert not loss.inter_active(2) and loss.inter_active(3)
    on = loss(out, labels, epoch=3)
    assert on.inter.requires_grad and on.inter.item() < 0  # log(1 / (1 + D)) < 0 for distinct prototypes
    torch.testing.assert_close(on.inter, 0.5 * ck.reference.inter_class_loss(out.prototypes, out.counts).float())
    torch.testing.assert_close(on.total, on.dice + on.attention + on.inter)
    # no prototypes (baseline, or inter=False): no inter term at any epoch
    none = loss(out._replace(prototypes=None, counts=None), labels, epoch=100)
    assert none.inter.item() == 0 and not none.inter.requires_grad
    zero_weight = CGALoss(inter_weight=0, inter_start_epoch=0)(out, labels, epoch=5)
    assert not zero_weight.inter.requires_grad


def test_inter_sign_and_forms():
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    out = perfect_output(labels)
    on = CGALoss(inter_weight=0.5, inter_start_epoch=0)(out, labels, epoch=0).inter
    reverse = CGALoss(inter_weight=0.5, inter_start_epoch=0, inter_sign=-1)(out, labels, epoch=0).inter
    torch.testing.assert_close(reverse, -on)  # "Baseline - Inter"
    # the reversed term pulls the prototypes together: its gradient is minus the paper one
    (g_on,) = torch.autograd.grad(on, out.prototypes)
    (g_rev,) = torch.autograd.grad(reverse, out.prototypes)
    torch.testing.assert_close(g_rev, -g_on)
    official = CGALoss(inter_form="official", inter_weight=1, inter_start_epoch=0)(out, labels, epoch=0).inter
    torch.testing.assert_close(
        official, ck.reference.inter_class_loss(out.prototypes, out.counts, form="official").float()
    )
    assert official.item() > 0
    torch.testing.assert_close(
        inter_class_term(out.prototypes, out.counts, sign=-1), -inter_class_term(out.prototypes, out.counts)
    )


def test_weights_scale_each_term():
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    out = CGAOutput(torch.randn(2, 4, 8, 8, 8), torch.randn(2, 4, 4, 4, 4), torch.randn(2, 4, 8), torch.ones(2, 4))
    one = CGALoss(inter_weight=1, inter_start_epoch=0)(out, labels, epoch=0)
    released = CGALoss(dice_weight=2, attention_weight=20, inter_weight=0.1, inter_start_epoch=0)(out, labels, epoch=0)
    torch.testing.assert_close(released.dice, 2 * one.dice)
    torch.testing.assert_close(released.attention, 20 * one.attention)
    torch.testing.assert_close(released.inter, 0.1 * one.inter)
    torch.testing.assert_close(released.total, released.dice + released.attention + released.inter)
    no_sam = CGALoss()(out._replace(attention=None, prototypes=None, counts=None), labels, epoch=50)
    assert no_sam.attention.item() == 0 and no_sam.inter.item() == 0 and torch.equal(no_sam.total, no_sam.dice)


def test_bad_loss_arguments():
    with pytest.raises(ValueError, match="inter_form must be one of"):
        CGALoss(inter_form="nope")
    with pytest.raises(ValueError, match="inter_sign must be 1 or -1"):
        CGALoss(inter_sign=2)
    for bad in (float("nan"), float("inf"), -1.0, True):
        with pytest.raises(ValueError, match="inter_weight .*finite number >= 0"):
            CGALoss(inter_weight=bad)
    with pytest.raises(ValueError, match="inter_start_epoch"):
        CGALoss(inter_start_epoch=-1)
