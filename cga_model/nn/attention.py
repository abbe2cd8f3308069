"""The Supervised Attention Module (SAM) of the CGA U-Net: attention conv path + category-guided update.

The attention map is ``S = Conv(I)`` (paper Eq. 6): three 3x3x3 convolutions on the *input
image*, ``in -> 16 -> 16 -> K``, with no norm and no activation between them (released code).
It is supervised by the down-sampled one-hot ground truth (``cga_model.losses``), and drives
``cga_kernels.IntraClassUpdate`` on one encoder feature map of the same resolution.

Down-sampling rate (paper Table 3) and where the update is applied (``CGAUNet``):

=====  ===============  =====================================  ==============================
rate   conv strides     attention size at a 128^3 input        updated feature map
=====  ===============  =====================================  ==============================
8      2, 2, 2          K x 16^3                               EnBlock4 output (8c channels)
4      1, 2, 2          K x 32^3                               EnBlock3 output (4c channels)
2      1, 1, 2          K x 64^3                               EnBlock2 output (2c channels)
=====  ===============  =====================================  ==============================

The path always has three convolutions (10,404 parameters for 4 input channels and K = 4);
for rates 4 and 2 the first one or two are stride 1. (The paper's Table 3 lists fewer
parameters for rates 4 and 2, i.e. it removed convolutions; its exact layers are not given,
so we keep the depth and change the strides.)
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

import cga_kernels as ck

from .choices import ATTENTION_PATHS, ATTENTION_STRIDES, MASK_MODES
from .prototype_field import field_update

PATH_STRIDES = {1: (1, 1, 1), **ATTENTION_STRIDES}  # the path alone also serves rate 1 (drop-in use)
IMAGE_PATHS = tuple(p for p in ATTENTION_PATHS if p != "features")  # AttentionPath kinds; "features": FeatureAttention
_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def conv_class(spatial_dims: int):
    """``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d``."""
    if spatial_dims not in _CONVS:
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    return _CONVS[spatial_dims]


class AttentionPath(nn.Module):
    """Attention conv path ``in -> width -> width -> K`` (AttConv1..3 of Table 1).

    ``(B, in, *S) -> (B, K, *S / r)`` attention logits, ``r = rate`` in {8, 4, 2, 1} (exact when
    S is a multiple of ``r``); 3-wide kernels, padding 1, ``spatial_dims`` 1, 2 or 3. ``kind``:
    ``"linear"`` (the released code: nothing between the convolutions, so the logits are a linear
    map of the image) or ``"relu"`` (a ReLU after AttConv1 and AttConv2; no parameters added).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        rate: int = 8,
        width: int = 16,
        spatial_dims: int = 3,
        kind: str = "linear",
    ):
        super().__init__()
        if rate not in PATH_STRIDES or isinstance(rate, bool):
            raise ValueError(f"attention_rate must be one of {sorted(PATH_STRIDES)}, got {rate!r}")
        if kind not in IMAGE_PATHS:
            hint = " (the attention from the features is FeatureAttention)" if kind in ATTENTION_PATHS else ""
            raise ValueError(f"AttentionPath kind must be one of {IMAGE_PATHS}, got {kind!r}{hint}")
        self.kind = kind
        self.act = nn.ReLU() if kind == "relu" else nn.Identity()
        conv = conv_class(spatial_dims)
        s1, s2, s3 = PATH_STRIDES[rate]
        self.rate = rate
        self.conv1 = conv(in_channels, width, 3, stride=s1, padding=1)
        self.conv2 = conv(width, width, 3, stride=s2, padding=1)
        self.conv3 = conv(width, num_classes, 3, stride=s3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(image)))))

    def extra_repr(self) -> str:
        return f"rate={self.rate}, kind={self.kind!r}"


class FeatureAttention(nn.Module):
    """Attention logits from the feature map the SAM updates: ``(B, C, *S) -> (B, K, *S)``, one 1x1 convolution
    (``attention_path="features"``). Unlike the image path, its supervision reaches the encoder that made the
    features, and it classifies from them rather than from the image's intensities."""

    def __init__(self, feature_channels: int, num_classes: int, *, rate: int, spatial_dims: int = 3):
        super().__init__()
        self.rate = rate
        self.conv = conv_class(spatial_dims)(feature_channels, num_classes, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


def attention_head(path: str, in_channels: int, num_classes: int, rate: int, width: int, feature_channels):
    """The SAM's attention logits: ``FeatureAttention`` for ``path="features"`` (``feature_channels`` needed),
    else ``AttentionPath`` of kind ``path`` on the image."""
    if path != "features":
        return AttentionPath(in_channels, num_classes, rate=rate, width=width, kind=path)
    if feature_channels is None:
        raise ValueError("path='features' needs feature_channels, the channels of the updated feature map")
    return FeatureAttention(feature_channels, num_classes, rate=rate)


class SAMOutput(NamedTuple):
    features: torch.Tensor  # updated features (B, C, *S) (the input features when intra is off)
    attention: torch.Tensor  # attention logits (B, K, *S)
    prototypes: torch.Tensor | None  # (B, K, C), None when inter is off
    counts: torch.Tensor | None  # (B, K), None when inter is off


class SAM(nn.Module):
    """Attention conv path + ``cga_kernels.IntraClassUpdate`` (residual) at one feature map.

    Args:
        in_channels, num_classes: image channels and K.
        rate: attention down-sampling rate (8, 4, 2); the features given to ``forward`` must be
            at ``1/rate`` of the image size.
        mask_mode: ``"hard"`` (argmax of the attention, released code: the update sends no
            gradient to the attention path) or ``"soft"`` (softmax weights, differentiable).
        intra: apply the intra-class update ``x + scatter(pool(x))``.
        intra_classes: class indices the update writes back (``None`` = all). Prototypes of
            every class are still computed.
        inter: return the prototypes and counts (for the inter-class loss). With ``intra`` off
            they are pooled from the un-updated features (``cga_kernels.prototype_pool``).
        width: channels of the attention path (16 in the paper).
        path: ``AttentionPath`` kind, ``"linear"`` (released code) or ``"relu"``, or ``"features"``
            (``FeatureAttention`` on the features given to ``forward``, ``feature_channels`` of them).
        gate: write the update back through a learned scalar gate that starts at 0,
            ``x + g * scatter(pool(x))`` (``intra`` only): the network starts as the baseline
            U-Net and uses the prototypes as much as they help (the paper: ``g = 1``).

    ``prototype_field`` (an attribute, not saved; ``None`` by default): pool the update's prototypes over a
    window around each voxel or per tile instead of over the whole input (``cga_model.nn.prototype_field``).

    ``forward(features (B, C, *S), image (B, in, *S_img)) -> SAMOutput``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        rate: int = 8,
        mask_mode: str = "hard",
        intra: bool = True,
        intra_classes: Sequence[int] | None = None,
        inter: bool = True,
        width: int = 16,
        gate: bool = False,
        path: str = "linear",
        feature_channels: int | None = None,
    ):
        super().__init__()
        if gate and not intra:
            raise ValueError("gate needs intra=True (it scales the intra-class update)")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if intra_classes is not None:
            given = intra_classes
            try:
                intra_classes = tuple(operator.index(k) for k in given)
                valid = bool(intra_classes) and not any(isinstance(k, bool) for k in given)
                valid = valid and all(0 <= k < num_classes for k in intra_classes)
            except TypeError:
                valid = False
            if not valid:
                raise ValueError(
                    f"intra_classes must be a non-empty list of class indices in [0, {num_classes}), got {given!r}"
                )
            if not intra:
                raise ValueError("intra_classes needs intra=True")
        self.num_classes = num_classes
        self.mask_mode = mask_mode
        self.intra, self.inter = bool(intra), bool(inter)
        self.from_features = path == "features"
        self.attention_path = attention_head(path, in_channels, num_classes, rate, width, feature_channels)
        self.update = (
            ck.IntraClassUpdate(num_classes, mode=mask_mode, residual=not gate, classes=intra_classes)
            if intra
            else None
        )
        self.gate = nn.Parameter(torch.zeros(())) if gate else None
        self.prototype_field = None  # prototypes over the whole input; ``prototype_field.set_prototype_field``

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> SAMOutput:
        attention = self.attention_path(features if self.from_features else image)
        if attention.shape[2:] != features.shape[2:]:
            raise ValueError(
                f"SAM: attention size {tuple(attention.shape[2:])} (rate {self.attention_path.rate}) does not match "
                f"the feature map {tuple(features.shape[2:])}"
            )
        proto = counts = None
        if self.update is not None:
            update, proto, counts = field_update(self.update, features, attention, self.prototype_field)
            features = update if self.gate is None else features + self.gate * update
        elif self.inter:
            mask = ck.attention_to_mask(attention, features.shape[2:], self.mask_mode)
            proto, counts = ck.prototype_pool(features, mask, num_classes=self.num_classes)
        if not self.inter:
            proto = counts = None
        return SAMOutput(features, attention, proto, counts)

    def extra_repr(self) -> str:
        return (
            f"mask_mode={self.mask_mode!r}, intra={self.intra}, inter={self.inter}, gate={self.gate is not None}, "
            f"prototype_field={self.prototype_field}"
        )
