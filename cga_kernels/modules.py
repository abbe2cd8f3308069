"""Drop-in modules for any 2-D or 3-D network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import _front as _ops
from ._contract import contract
from ._math import LOSS_FORMS
from ._validate import check_choice, check_num_classes

MASK_MODES = ("hard", "soft")

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def attention_to_mask(attention_logits: torch.Tensor, size, mode: str) -> torch.Tensor:
    """Turn attention logits ``(B, K, *S_att)`` into a class mask at spatial ``size`` (1-3 dims).

    ``mode="hard"``: argmax over K, then nearest resampling -> labels ``(B, *size)`` (int64).
    ``mode="soft"``: softmax over K, then (bi/tri)linear resampling -> weights ``(B, K, *size)``.

    Example::

        >>> import torch, cga_kernels as ck
        >>> ck.attention_to_mask(torch.randn(2, 4, 4, 4, 4), (8, 8, 8), "hard").shape
        torch.Size([2, 8, 8, 8])
    """
    check_choice("mode", mode, MASK_MODES)
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


@contract
class IntraClassUpdate(nn.Module):
    """Category-guided intra-class update (paper section 3.3) driven by attention logits.

    ``forward(features, attention_logits)`` turns the logits into a class mask at the
    features' size (``attention_to_mask``) and returns ``cga_kernels.intra_class_update``:
    ``y = features + scatter(pool(features, mask), mask)`` with
    ``proto[b, k] = sum_n w[b, k, n] features[b, :, n] / counts[b, k]``.

    Args:
        num_classes: K, the number of attention channels.
        mode: ``"hard"`` (argmax of the attention, then nearest resampling, as in the released
            code; the attention gets no gradient through the update) or ``"soft"`` (softmax
            weights, then (bi/tri)linear resampling; differentiable).
        residual: add the input features to the scattered prototypes (default True).
        classes: None (every class) or the class indices written back (ablation
            "Intra (classK)"); prototypes and counts of all K classes are still returned.

    Shapes: ``forward(features (B, C, *S), attention_logits (B, K, *S_att))`` returns
    ``(features_out (B, C, *S), prototypes (B, K, C), counts (B, K))``; 1-D, 2-D and 3-D.

    {empty}

    {dtypes}

    Example::

        >>> import torch, cga_kernels as ck
        >>> sam = ck.IntraClassUpdate(num_classes=4, mode="hard")
        >>> y, proto, counts = sam(torch.randn(2, 8, 8, 8, 8), torch.randn(2, 4, 4, 4, 4))
        >>> y.shape, proto.shape, counts.shape
        (torch.Size([2, 8, 8, 8, 8]), torch.Size([2, 4, 8]), torch.Size([2, 4]))
    """

    def __init__(self, num_classes: int, mode: str = "hard", residual: bool = True, classes=None):
        super().__init__()
        check_choice("mode", mode, MASK_MODES)
        self.num_classes = check_num_classes(num_classes)
        self.mode = mode
        self.residual = residual
        self.classes = None if classes is None else tuple(classes)

    def forward(self, features: torch.Tensor, attention_logits: torch.Tensor):
        if not isinstance(attention_logits, torch.Tensor) or not attention_logits.is_floating_point():
            raise TypeError("attention_logits must be a floating-point tensor of shape (B, K, *S_att)")
        if attention_logits.dim() != features.dim() or attention_logits.shape[1] != self.num_classes:
            raise ValueError(
                f"attention_logits must have shape (B, K={self.num_classes}, *S) "
                f"with {features.dim() - 2} spatial dims "
                f"like the features {tuple(features.shape)}, got {tuple(attention_logits.shape)}"
            )
        if attention_logits.shape[0] != features.shape[0]:
            raise ValueError(
                f"attention_logits has batch {attention_logits.shape[0]} but features has {features.shape[0]}"
            )
        mask = attention_to_mask(attention_logits, features.shape[2:], self.mode)
        return _ops.intra_class_update(
            features, mask, num_classes=self.num_classes, residual=self.residual, classes=self.classes
        )

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, mode={self.mode!r}, residual={self.residual}, classes={self.classes}"


class InterClassDistanceLoss(nn.Module):
    """``weight * cga_kernels.inter_class_loss(proto, counts, form)`` (paper Eq. 9-10, or the
    released code's form; see ``help(cga_kernels.inter_class_loss)`` for both formulas).

    Args:
        form: ``"paper"`` (default; ``mean_b log(1 / (1 + D_b))`` over present classes) or
            ``"official"`` (released code: ``10 log(100 / D + 1)``).
        weight: the factor applied to the loss (default 1.0).

    ``forward(proto (B, K, C), counts (B, K))`` returns a scalar in the accumulation dtype;
    classes with ``counts == 0`` are left out of the paper form.

    Example::

        >>> import torch, cga_kernels as ck
        >>> loss = ck.InterClassDistanceLoss(weight=0.1)(torch.randn(2, 4, 8), torch.ones(2, 4))
    """

    def __init__(self, form: str = "paper", weight: float = 1.0):
        super().__init__()
        check_choice("form", form, LOSS_FORMS)
        self.form = form
        self.weight = weight

    def forward(self, proto: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.weight * _ops.inter_class_loss(proto, counts, form=self.form)

    def extra_repr(self) -> str:
        return f"form={self.form!r}, weight={self.weight}"
