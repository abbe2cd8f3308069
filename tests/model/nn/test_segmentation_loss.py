"""The segmentation loss ``L_M``: the default Dice + cross-entropy and the paper's softmax Dice, and why
the default is the one that learns on full-size volumes (a crop without tumour teaches the paper's
loss nothing)."""

import torch

from cga_model.nn.losses import CGALoss, dice_ce_loss, softmax_dice_loss
from cga_model.nn.network import CGAOutput


def _painted(et_logit: float, shape=(2, 16, 16, 16)):
    """Logits ``(B, 4, *S)`` that paint enhancing tumour over the crop (a leaf tensor)."""
    logits = torch.zeros((shape[0], 4) + shape[1:])
    logits[:, 3] = et_logit
    return logits.requires_grad_(True)


def test_paper_dice_gives_no_gradient_on_a_crop_without_tumour():
    background = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    for et_logit in (0.0, 2.0, 4.0):
        paper = _painted(et_logit)
        softmax_dice_loss(paper, background).backward()
        default = _painted(et_logit)
        dice_ce_loss(default, background).backward()
        assert paper.grad.abs().max() < 1e-9  # the collapse: nothing pushes the painted tumour back
        assert default.grad[:, 3].min() > 0  # every voxel: descent lowers the enhancing-tumour logit
        assert default.grad[:, 0].max() < 0  # ... and raises background


def test_cga_loss_segmentation_choice():
    logits = torch.randn(2, 4, 8, 8, 8)
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    output = CGAOutput(logits, None, None, None)
    torch.testing.assert_close(CGALoss()(output, labels, 0).dice, dice_ce_loss(logits, labels))
    torch.testing.assert_close(CGALoss(segmentation="dice")(output, labels, 0).dice, softmax_dice_loss(logits, labels))


def test_unknown_segmentation_loss_is_refused():
    try:
        CGALoss(segmentation="focal")
    except ValueError as err:
        assert "--loss" in str(err) and "focal" in str(err)
    else:
        raise AssertionError("CGALoss accepted an unknown segmentation loss")
