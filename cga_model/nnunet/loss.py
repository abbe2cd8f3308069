"""nnU-Net's loss plus the attention loss and the inter-class loss of the guided network.

``GuidedLoss(host_loss, network, regions=..., config=LossConfig(...))`` is called as nnU-Net calls its loss,
``loss(output, target)``, with the host output and targets (lists of per-scale tensors under
deep supervision); it adds, from ``network.last_result`` (``cga_model.nnunet.network``),

``total = host_loss + attention_weight * L_A + inter_weight * inter_sign * L_I``  (``L_I`` once ``inter_active``)

with ``L_A`` the attention loss of the ``LossConfig`` (``attention_loss``: the MSE against the one-hot, or
Dice + cross-entropy) against the full-resolution target's categories (``cga_model.nn.losses.attention_loss``)
and ``L_I`` the inter-class loss of the bottleneck prototypes (``inter_class_term``), the weights and form
those of the ``LossConfig`` (its ``segmentation`` and ``dice_weight`` do not apply: nnU-Net's own loss is the
host loss). The last step's unweighted terms are in ``last_terms``.

Categories (K = number of network outputs + 1, fixed by the network alone so a checkpoint
rebuilds without the dataset): label-based training: category = label value (the last category
has no voxels); region-based training: category ``r + 1`` for the last of the network's regions
that contains the voxel (the order of ``regions_class_order``: later regions win, as when nnU-Net
turns region outputs into labels), 0 outside every region. For nested BraTS regions (WT, TC, ET)
these are background, WT-only, TC-only, ET.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..nn.loss_config import LossConfig
from ..nn.losses import attention_loss, inter_class_term


class GuidedTerms(NamedTuple):
    """Unweighted terms of one step, detached 0-d tensors (no device sync inside the step)."""

    host: torch.Tensor
    attention: torch.Tensor
    inter: torch.Tensor


def target_categories(target: torch.Tensor, *, regions: bool) -> torch.Tensor:
    """nnU-Net target ``(B, 1, *S)`` label values, or ``(B, R, *S)`` region masks -> categories ``(B, *S)`` int64."""
    if not regions:
        return target[:, 0].long()
    categories = torch.zeros((target.shape[0],) + tuple(target.shape[2:]), dtype=torch.long, device=target.device)
    for r in range(target.shape[1]):
        categories[target[:, r] > 0] = r + 1
    return categories


class GuidedLoss(nn.Module):
    """See the module docstring. ``network``: the ``GuidedNetwork`` itself (not a DDP/compile wrapper)."""

    def __init__(
        self,
        host_loss: nn.Module,
        network: nn.Module,
        *,
        regions: bool,
        config: LossConfig,
    ):
        super().__init__()
        self.host_loss = host_loss
        self.network = [network]  # a list: the network's parameters belong to the trainer, not to the loss
        self.regions = regions
        self.config = config
        self.inter_active = False
        self.last_terms = None

    def forward(self, output, target) -> torch.Tensor:
        host = self.host_loss(output, target)
        result = self.network[0].last_result
        full = target[0] if isinstance(target, (list, tuple)) else target
        c = self.config
        attention = attention_loss(result.attention, target_categories(full, regions=self.regions), c.attention_loss)
        total = host + c.attention_weight * attention
        inter = torch.zeros((), device=host.device)
        if self.inter_active and c.inter_weight:
            inter = inter_class_term(result.prototypes, result.counts, c.inter_form, sign=c.inter_sign)
            total = total + c.inter_weight * inter
        self.last_terms = GuidedTerms(host.detach(), attention.detach(), inter.detach())
        return total
