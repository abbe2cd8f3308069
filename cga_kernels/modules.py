"""Drop-in modules for any 2-D or 3-D network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import compiled as _ops

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def attention_to_mask(attention_logits: torch.Tensor, size, mode: str) -> torch.Tensor:
    """Turn attention logits ``(B, K, *S_att)`` into a class mask at spatial ``size``.

    ``mode="hard"``: argmax over K, then nearest resampling -> labels ``(B, *size)``.
    ``mode="soft"``: softmax over K, then (bi/tri)linear resampling -> weights ``(B, K, *size)``.
    """
    size = tuple(size)
    if mode == "hard":
        labels = attention_logits.argmax(dim=1)
        if tuple(labels.shape[1:]) != size:
            labels = F.interpolate(labels.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).long()
        return labels
    weights = attention_logits.softmax(dim=1)
    if tuple(weights.shape[2:]) != size:
        weights = F.interpolate(weights, size=size, mode=_LINEAR_MODES[len(size)], align_corners=False)
    return weights


class IntraClassUpdate(nn.Module):
    """Category-guided intra-class update (paper section 3.3) driven by attention logits.

    Args:
        num_classes: K, the number of attention channels.
        mode: ``"hard"`` (argmax of the attention, as in the released code; the attention gets
            no gradient through the update) or ``"soft"`` (softmax weights, differentiable).
        residual: add the input features to the scattered prototypes.
        classes: restrict the scatter-back to these class indices (ablation "Intra (classK)").

    ``forward(features (B, C, *S), attention_logits (B, K, *S_att))`` returns
    ``(features_out (B, C, *S), prototypes (B, K, C), counts (B, K))``. The attention map is
    resampled to the feature size when they differ (1-D, 2-D and 3-D).
    """

    def __init__(self, num_classes: int, mode: str = "hard", residual: bool = True, classes=None):
        super().__init__()
        if mode not in ("hard", "soft"):
            raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.mode = mode
        self.residual = residual
        self.classes = None if classes is None else tuple(classes)

    def forward(self, features: torch.Tensor, attention_logits: torch.Tensor):
        if not isinstance(attention_logits, torch.Tensor) or not attention_logits.is_floating_point():
            raise TypeError("attention_logits must be a floating-point tensor of shape (B, K, *S_att)")
        if attention_logits.dim() != features.dim() or attention_logits.shape[1] != self.num_classes:
            raise ValueError(
                f"attention_logits must have shape (B, K={self.num_classes}, *S) with {features.dim() - 2} spatial dims "
                f"like the features {tuple(features.shape)}, got {tuple(attention_logits.shape)}"
            )
        if attention_logits.shape[0] != features.shape[0]:
            raise ValueError(f"attention_logits has batch {attention_logits.shape[0]} but features has {features.shape[0]}")
        mask = attention_to_mask(attention_logits, features.shape[2:], self.mode)
        return _ops.intra_class_update(features, mask, num_classes=self.num_classes, residual=self.residual, classes=self.classes)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, mode={self.mode!r}, residual={self.residual}, classes={self.classes}"


class InterClassDistanceLoss(nn.Module):
    """``weight * inter_class_loss(proto, counts, form)`` (paper Eq. 9-10, or the released code's form)."""

    def __init__(self, form: str = "paper", weight: float = 1.0):
        super().__init__()
        if form not in ("paper", "official"):
            raise ValueError(f"form must be 'paper' or 'official', got {form!r}")
        self.form = form
        self.weight = weight

    def forward(self, proto: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.weight * _ops.inter_class_loss(proto, counts, form=self.form)

    def extra_repr(self) -> str:
        return f"form={self.form!r}, weight={self.weight}"
