"""Losses of the CGA U-Net (paper section 3.1): the segmentation term ``L_M``, attention MSE ``L_A``,
inter-class distance ``L_I``, and ``CGALoss`` combining them in two stages.

``L_M`` is Dice + cross-entropy by default (``segmentation="dice_ce"``: the paper's Dice with
cross-entropy added, as nnU-Net adds it to its Dice); the paper's own choice, the softmax Dice
over the tumour classes alone, is ``segmentation="dice"`` (``cga train --loss dice``). Why the
default differs: with the paper's Dice a batch without tumour gives no gradient at all (its loss
is 3 whatever is predicted) and nothing rewards background, so on full-size volumes (240x240x155,
tumour ~1 % of the brain, uniform crops) training collapsed to enhancing tumour painted over most
of the volume; cross-entropy gives every voxel a gradient towards its class.

Conventions (all terms are float32 scalars, whatever the model's dtype):

- ``labels`` are class indices ``(B, D, H, W)`` in ``[0, K)`` (``cga_model.labels`` maps BraTS
  labels {0, 1, 2, 4} / {0, 1, 2, 3} to them).
- **Dice + CE** (``dice_ce_loss``, the default): ``CE + sum_{k >= 1} (1 - dice_k)``: the mean
  cross-entropy of the logits over all voxels plus the batch Dice below over every class but
  background (the tumour classes; with a resection-cavity class, that too). Measured on small
  realistic cohorts (``tests/test_learning.py``'s setting, 120 steps): this form learned the tumour
  core and enhancing tumour faster than CE plus the mean Dice over all classes or over the
  foreground classes (held-out TC 0.33 vs 0.02 / 0.04).
- **Dice** (``softmax_dice_loss``, the paper's): ``P = softmax(logits)``, one Dice per class computed over
  the *whole batch* (sums over samples and voxels, as in the released code),
  ``dice_k = (2 sum P_k G_k + s) / (sum P_k + sum G_k + s)`` with ``s = smooth = 1e-5`` in both
  numerator and denominator, loss ``sum_{k in 1..3} (1 - dice_k)`` (range [0, 3]). Empty rule:
  a class absent from the target *and* the prediction scores dice 1 (loss 0); a class absent
  from the target but predicted scores ~0 (loss ~1). (The released code puts ``eps`` only in the
  denominator, so an empty-and-unpredicted class costs a constant 1 with no useful gradient.)
- **Attention MSE** (``attention_mse_loss``): ``mean((A - G)^2)`` over batch, classes and
  voxels, where ``A`` are the attention *logits* and ``G`` is the one-hot of the labels
  down-sampled by nearest neighbour to the attention size. Nearest picks, along each axis,
  input voxel ``floor(i * S / s)`` for output voxel ``i``: for an exact rate ``r = S / s`` the
  first voxel (lowest index) of every ``r``-block, i.e. ``labels[:, ::r, ::r, ::r]``
  (``F.interpolate(mode="nearest")`` convention; strided indexing is used when exact).
- **Inter-class** (``inter_class_term``): ``cga_kernels.inter_class_loss`` (``form="paper"``:
  ``log(1 / (1 + D))`` with ``D`` the sum of distances between present classes, averaged over
  the batch; ``form="official"``: the released code's ``10 log(100 / D + 1)``), times
  ``sign`` (``-1`` = the paper's "Baseline - Inter" experiment, which minimises the distance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

import cga_kernels as ck

from .choices import ATTENTION_LOSSES, INTER_FORMS
from .loss_config import LossConfig


def _check_labels(labels: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    """``labels`` must be integer class indices of shape ``(B, *S)`` for a ``reference (B, K, *S)``, in ``[0, K)``."""
    if (
        not isinstance(labels, torch.Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or labels.dtype == torch.bool
    ):
        raise TypeError(
            f"labels must be an integer tensor of class indices, got {getattr(labels, 'dtype', type(labels))}"
        )
    expected = (reference.shape[0],) + tuple(reference.shape[2:])
    if tuple(labels.shape) != expected:
        raise ValueError(
            f"labels must have shape {expected} (B, *S) to match the {what} {tuple(reference.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    num_classes = reference.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must be class indices in [0, {num_classes}), "
            f"found values in [{int(labels.min())}, {int(labels.max())}]"
        )


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Class indices ``(B, *S)`` -> one-hot ``(B, K, *S)`` (float32 by default)."""
    return F.one_hot(labels.long(), num_classes).movedim(-1, 1).to(dtype)


def batch_dice(logits: torch.Tensor, labels: torch.Tensor, smooth: float) -> torch.Tensor:
    """Soft Dice per class ``(K,)`` of ``P = softmax(logits (B, K, *S))`` against the one-hot of
    ``labels (B, *S)``, sums over the whole batch: ``(2 |P_k G_k| + smooth) / (|P_k| + |G_k| + smooth)``."""
    _check_labels(labels, logits, "logits")
    probs = logits.float().softmax(dim=1)
    target = one_hot(labels, logits.shape[1])
    dims = (0,) + tuple(range(2, logits.dim()))
    inter = (probs * target).sum(dims)
    denom = probs.sum(dims) + target.sum(dims)
    return (2 * inter + smooth) / (denom + smooth)


def softmax_dice_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, classes: Sequence[int] = (1, 2, 3), smooth: float = 1e-5
) -> torch.Tensor:
    """The paper's ``L_M``: ``sum_{k in classes} 1 - dice_k`` (``batch_dice``), ``P = softmax(logits, 1)``.

    ``logits (B, K, *S)``, ``labels (B, *S)`` class indices; sums run over the whole batch.
    Default ``classes``: the three tumour classes (1, 2, 3 = BraTS labels 1, 2, 4).
    """
    return (1 - batch_dice(logits, labels, smooth)[list(classes)]).sum()


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor, *, smooth: float = 1e-5) -> torch.Tensor:
    """The default ``L_M``: ``cross_entropy(logits, labels) + sum_{k = 1..K-1} (1 - dice_k)`` (``batch_dice``;
    every class but background). ``logits (B, K, *S)``, ``labels (B, *S)``; range [0, inf)."""
    dice = batch_dice(logits, labels, smooth)
    return F.cross_entropy(logits.float(), labels.long()) + (1 - dice[1:]).sum()


def downsample_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest down-sampling of labels ``(B, *S)`` to ``size``: output voxel ``i`` takes input voxel
    ``floor(i * S / size)`` on each axis (``F.interpolate(mode="nearest")``); for exact rates this is the
    strided slice ``labels[:, ::r1, ::r2, ...]`` (first voxel of each block), which is what runs."""
    size = tuple(int(s) for s in size)
    spatial = tuple(labels.shape[1:])
    if len(size) != len(spatial):
        raise ValueError(f"size {size} must have one entry per spatial dim of the labels {spatial}")
    if size == spatial:
        return labels
    if all(s > 0 and n % s == 0 for n, s in zip(spatial, size)):
        return labels[(slice(None),) + tuple(slice(None, None, n // s) for n, s in zip(spatial, size))]
    return F.interpolate(labels.unsqueeze(1).double(), size=size, mode="nearest").squeeze(1).to(labels.dtype)


def guided_map_labels(attention: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The class indices of the paper's category guided map G: ``labels (B, *S)`` down-sampled (nearest, see
    ``downsample_labels``) to the size of the attention logits ``(B, K, *S_att)``, checked against them."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != attention.dim() - 1:
        raise ValueError(
            f"labels must be (B, *S) with the spatial rank of the attention {tuple(attention.shape)}, "
            f"got {tuple(getattr(labels, 'shape', ()))}"
        )
    small = downsample_labels(labels, attention.shape[2:])
    _check_labels(small, attention, "attention")
    return small


def attention_mse_loss(attention: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE between attention logits ``(B, K, *S_att)`` and the one-hot of ``labels (B, *S)`` down-sampled
    (nearest, see ``downsample_labels``) to ``S_att``: the paper's category guided map G. Mean over all elements."""
    return F.mse_loss(attention.float(), one_hot(guided_map_labels(attention, labels), attention.shape[1]))


def attention_loss(attention: torch.Tensor, labels: torch.Tensor, form: str = "mse") -> torch.Tensor:
    """``L_A`` of attention logits ``(B, K, *S_att)`` against ``labels (B, *S)``: ``"mse"``
    (``attention_mse_loss``, the paper's) or ``"dice_ce"`` (``dice_ce_loss`` of the logits against the labels
    down-sampled as for the MSE: a class-balanced loss, under which the argmax names the rare tumour classes)."""
    if form == "mse":
        return attention_mse_loss(attention, labels)
    if form != "dice_ce":
        raise ValueError(f"attention_loss must be one of {ATTENTION_LOSSES}, got {form!r}")
    return dice_ce_loss(attention, guided_map_labels(attention, labels))


def inter_class_term(
    prototypes: torch.Tensor, counts: torch.Tensor, form: str = "paper", *, sign: float = 1.0
) -> torch.Tensor:
    """``sign * cga_kernels.inter_class_loss(prototypes, counts, form)`` as float32; ``sign=-1`` is the
    "Baseline - Inter" experiment (the loss then pulls the prototypes together)."""
    if form not in INTER_FORMS:
        raise ValueError(f"inter_form must be one of {INTER_FORMS}, got {form!r}")
    return sign * ck.inter_class_loss(prototypes, counts, form=form).float()


class LossTerms(NamedTuple):
    """``total`` and each *weighted* term (``total == dice + attention + inter``); ``dice`` is the
    segmentation term ``L_M`` (Dice + CE by default, the paper's Dice with ``segmentation="dice"``). ``attention`` is 0
    without SAM; ``inter`` is 0 (a constant, outside the autograd graph) before its start epoch, with
    weight 0, or when the output has no prototypes."""

    total: torch.Tensor
    dice: torch.Tensor
    attention: torch.Tensor
    inter: torch.Tensor


class CGALoss(nn.Module):
    """Two-stage CGA U-Net loss (paper section 3.1), its options in a ``LossConfig``.

    ``total = dice_weight * L_M + attention_weight * L_A`` for ``epoch < inter_start_epoch``,
    ``+ inter_weight * inter_sign * L_I`` from ``inter_start_epoch`` on (epochs counted from 0).

    - ``segmentation``: ``L_M``, ``"dice_ce"`` (default, ``dice_ce_loss``) or ``"dice"`` (the
      paper's ``softmax_dice_loss``, which collapses on full-size volumes; see the module docstring);
    - ``attention_weight``: 1 is the paper ("the weights of L_M and L_A are the same"), 20 the
      released code;
    - ``inter_weight``: the paper only says it keeps ``L_I`` at the order of magnitude of the other
      two; with the paper form ``L_I`` is about ``-log(1 + D)``, a few units, so 0.1 is our default;
    - ``inter_form``: ``"paper"`` or ``"official"`` (see ``cga_kernels.inter_class_loss``);
    - ``inter_sign``: ``-1`` for the "Baseline - Inter" experiment.

    ``CGALoss(config=None, *, dice_smooth=1e-5, **options)``: ``options`` replace fields of
    ``config`` (default ``LossConfig()``), e.g. ``CGALoss(inter_start_epoch=0)``.
    ``forward(output: CGAOutput, labels (B, D, H, W) class indices, epoch: int) -> LossTerms``.
    """

    def __init__(self, config: LossConfig | None = None, *, dice_smooth: float = 1e-5, **options):
        super().__init__()
        self.config = dataclasses.replace(config or LossConfig(), **options)
        self.dice_smooth = dice_smooth

    def inter_active(self, epoch: int) -> bool:
        """Whether the inter-class term is part of the loss at ``epoch``."""
        return self.config.inter_weight != 0 and epoch >= self.config.inter_start_epoch

    def forward(self, output, labels: torch.Tensor, epoch: int) -> LossTerms:
        c = self.config
        zero = torch.zeros((), dtype=torch.float32, device=output.logits.device)
        segment = dice_ce_loss if c.segmentation == "dice_ce" else softmax_dice_loss
        dice = c.dice_weight * segment(output.logits, labels, smooth=self.dice_smooth)
        attention = zero
        if output.attention is not None:
            attention = c.attention_weight * attention_loss(output.attention, labels, c.attention_loss)
        inter = zero
        if output.prototypes is not None and self.inter_active(epoch):
            inter = c.inter_weight * inter_class_term(output.prototypes, output.counts, c.inter_form, sign=c.inter_sign)
        return LossTerms(dice + attention + inter, dice, attention, inter)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())
