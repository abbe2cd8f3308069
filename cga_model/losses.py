"""Losses of the CGA U-Net: softmax Dice, attention MSE, inter-class distance, and their combination.

Reductions: every term is a scalar. The Dice is computed per class over the whole batch
(sums over samples and voxels, as in the released code), smoothed by ``eps`` so that a class
absent from both prediction and target contributes 0 loss.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

import cga_kernels as ck


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices ``(B, *S)`` -> float one-hot ``(B, K, *S)``."""
    return F.one_hot(labels.long(), num_classes).movedim(-1, 1).float()


def softmax_dice_loss(logits: torch.Tensor, labels: torch.Tensor, classes=(1, 2, 3), eps: float = 1e-5) -> torch.Tensor:
    """``sum_{k in classes} 1 - (2 |P_k G_k| + eps) / (|P_k| + |G_k| + eps)`` with ``P = softmax(logits)``.

    ``logits (B, K, *S)``, ``labels (B, *S)`` class indices. Default: the three tumour classes.
    """
    probs = logits.float().softmax(dim=1)
    target = one_hot(labels, logits.shape[1])
    dims = (0,) + tuple(range(2, logits.dim()))
    inter = (probs * target).sum(dims)
    denom = probs.sum(dims) + target.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    return (1 - dice[list(classes)]).sum()


def downsample_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Nearest down-sampling of labels ``(B, *S)`` to ``size``: voxel ``i`` takes label ``floor(i * S / size)``
    (for a rate-r grid, the first voxel of each r-block), as ``F.interpolate(mode="nearest")``."""
    return F.interpolate(labels.unsqueeze(1).float(), size=tuple(size), mode="nearest").squeeze(1).long()


def attention_mse_loss(attention: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE between attention logits ``(B, K, *S_att)`` and the one-hot of the labels ``(B, *S)`` down-sampled
    (nearest) to ``S_att`` (the paper's category guided map G)."""
    target = one_hot(downsample_labels(labels, attention.shape[2:]), attention.shape[1])
    return F.mse_loss(attention.float(), target)


def inter_class_term(prototypes: torch.Tensor, counts: torch.Tensor, form: str = "paper", sign: float = 1.0) -> torch.Tensor:
    """``sign * cga_kernels.inter_class_loss``; ``sign=-1`` is the "Baseline - Inter" experiment
    (minimising the distance instead of maximising it)."""
    return sign * ck.inter_class_loss(prototypes, counts, form=form)


class LossTerms(NamedTuple):
    """Total loss and each weighted term (``inter`` is 0 before its start epoch or without prototypes)."""

    total: torch.Tensor
    dice: torch.Tensor
    attention: torch.Tensor
    inter: torch.Tensor


class CGALoss(nn.Module):
    """Two-stage CGA U-Net loss: ``dice_weight * L_M + attention_weight * L_A`` and, from
    ``inter_start_epoch`` on, ``+ inter_weight * L_I`` (paper section 3.1).

    ``attention_weight=1`` is the paper ("the weights of L_M and L_A are the same"); the released
    code uses 20. ``forward(output: CGAOutput, labels (B, D, H, W), epoch) -> LossTerms``.
    """

    def __init__(self, dice_weight=1.0, attention_weight=1.0, inter_weight=0.1, inter_form="paper", inter_start_epoch=20, inter_sign=1.0):
        super().__init__()
        if inter_form not in ("paper", "official"):
            raise ValueError(f"inter_form must be 'paper' or 'official', got {inter_form!r}")
        self.dice_weight, self.attention_weight, self.inter_weight = dice_weight, attention_weight, inter_weight
        self.inter_form, self.inter_start_epoch, self.inter_sign = inter_form, inter_start_epoch, inter_sign

    def forward(self, output, labels: torch.Tensor, epoch: int) -> LossTerms:
        zero = output.logits.new_zeros((), dtype=torch.float32)
        dice = self.dice_weight * softmax_dice_loss(output.logits, labels)
        attention = self.attention_weight * attention_mse_loss(output.attention, labels) if output.attention is not None else zero
        inter = zero
        if output.prototypes is not None and epoch >= self.inter_start_epoch and self.inter_weight:
            inter = self.inter_weight * inter_class_term(output.prototypes, output.counts, self.inter_form, self.inter_sign).float()
        return LossTerms(dice + attention + inter, dice, attention, inter)

    def extra_repr(self) -> str:
        return (
            f"dice_weight={self.dice_weight}, attention_weight={self.attention_weight}, inter_weight={self.inter_weight}, "
            f"inter_form={self.inter_form!r}, inter_start_epoch={self.inter_start_epoch}, inter_sign={self.inter_sign}"
        )
