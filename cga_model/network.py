"""The CGA U-Net (paper Table 1) and its baseline / ablations, built on ``cga_kernels``."""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn

import cga_kernels as ck

from .blocks import AttentionPath, ResBlock, UpBlock, conv3


class CGAOutput(NamedTuple):
    """What ``CGAUNet.forward`` returns.

    - ``logits``: ``(B, K, D, H, W)`` segmentation logits (apply softmax for probabilities);
    - ``attention``: ``(B, K, D/r, H/r, W/r)`` attention logits (None without SAM);
    - ``prototypes``: ``(B, K, C_r)`` class prototypes at the updated feature map, ``counts``:
      ``(B, K)`` (None when neither the intra update nor the inter loss is on).
    """

    logits: torch.Tensor
    attention: Optional[torch.Tensor]
    prototypes: Optional[torch.Tensor]
    counts: Optional[torch.Tensor]


class CGAUNet(nn.Module):
    """Category Guided Attention U-Net.

    Encoder: InitConv (conv3 + channel dropout), EnBlock1, EnDown1, 2x EnBlock2, EnDown2,
    2x EnBlock3, EnDown3, 4x EnBlock4; decoder: three (DeUp, DeBlock) levels, EndConv 1x1.
    SAM (``sam=True``): an attention conv path on the input image supervised by the
    down-sampled ground truth; its argmax (``mask_mode="hard"``) or softmax (``"soft"``) drives
    ``cga_kernels.IntraClassUpdate`` on the encoder output at ``1/attention_rate``
    (rate 8: EnBlock4 output, 4: EnBlock3 output, 2: EnBlock2 output), with a residual add.

    Args:
        intra: apply the intra-class update (off: attention + MSE only).
        intra_classes: restrict the update to these class indices (ablation "Intra (classK)").
        inter: return prototypes for the inter-class loss (also when ``intra=False``).
        dropout: channel dropout after InitConv (training only; off in ``eval()``).

    Input ``(B, in_channels, D, H, W)`` with D, H, W divisible by 8.
    """

    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = 4,
        base_channels: int = 16,
        norm: str = "gn",
        sam: bool = True,
        intra: bool = True,
        intra_classes: Optional[Sequence[int]] = None,
        inter: bool = True,
        attention_rate: int = 8,
        mask_mode: str = "hard",
        dropout: float = 0.2,
    ):
        super().__init__()
        c = base_channels
        self.num_classes = num_classes
        self.sam, self.intra, self.inter = sam, sam and intra, sam and inter
        self.attention_rate = attention_rate
        self.init_conv = conv3(in_channels, c)
        self.init_dropout = nn.Dropout3d(dropout)
        self.en_block1 = ResBlock(c, norm)
        self.en_down1 = conv3(c, 2 * c, stride=2)
        self.en_block2 = nn.Sequential(*[ResBlock(2 * c, norm) for _ in range(2)])
        self.en_down2 = conv3(2 * c, 4 * c, stride=2)
        self.en_block3 = nn.Sequential(*[ResBlock(4 * c, norm) for _ in range(2)])
        self.en_down3 = conv3(4 * c, 8 * c, stride=2)
        self.en_block4 = nn.Sequential(*[ResBlock(8 * c, norm) for _ in range(4)])
        self.de_up3 = UpBlock(8 * c, 4 * c)
        self.de_block3 = ResBlock(4 * c, norm)
        self.de_up2 = UpBlock(4 * c, 2 * c)
        self.de_block2 = ResBlock(2 * c, norm)
        self.de_up1 = UpBlock(2 * c, c)
        self.de_block1 = ResBlock(c, norm)
        self.end_conv = nn.Conv3d(c, num_classes, kernel_size=1)
        if sam:
            self.attention_path = AttentionPath(in_channels, num_classes, attention_rate)
            self.intra_update = ck.IntraClassUpdate(num_classes, mode=mask_mode, residual=True, classes=intra_classes)
        if mask_mode not in ("hard", "soft"):
            raise ValueError(f"mask_mode must be 'hard' or 'soft', got {mask_mode!r}")
        self.mask_mode = mask_mode

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"input must have shape (B, C, D, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.init_conv.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels, the model expects {self.init_conv.in_channels}")
        if any(s % 8 for s in x.shape[2:]):
            raise ValueError(f"input spatial size {tuple(x.shape[2:])} must be divisible by 8 (three stride-2 levels); pad or crop it")

    def _category_guided(self, feats: torch.Tensor, attention: torch.Tensor):
        """Apply the intra-class update (or only pool, for the inter loss) at one encoder level."""
        if self.intra:
            return self.intra_update(feats, attention)
        if self.inter:
            mask = ck.attention_to_mask(attention, feats.shape[2:], self.mask_mode)
            proto, counts = ck.prototype_pool(feats, mask, num_classes=self.num_classes)
            return feats, proto, counts
        return feats, None, None

    def forward(self, x: torch.Tensor) -> CGAOutput:
        self._check_input(x)
        attention = self.attention_path(x) if self.sam else None
        proto = counts = None
        s1 = self.en_block1(self.init_dropout(self.init_conv(x)))  # (B, c, D, H, W)
        s2 = self.en_block2(self.en_down1(s1))  # (B, 2c, D/2, ...)
        if self.sam and self.attention_rate == 2:
            s2, proto, counts = self._category_guided(s2, attention)
        s3 = self.en_block3(self.en_down2(s2))  # (B, 4c, D/4, ...)
        if self.sam and self.attention_rate == 4:
            s3, proto, counts = self._category_guided(s3, attention)
        bottom = self.en_block4(self.en_down3(s3))  # (B, 8c, D/8, ...)
        if self.sam and self.attention_rate == 8:
            bottom, proto, counts = self._category_guided(bottom, attention)
        y = self.de_block3(self.de_up3(bottom, s3))  # (B, 4c, D/4, ...)
        y = self.de_block2(self.de_up2(y, s2))  # (B, 2c, D/2, ...)
        y = self.de_block1(self.de_up1(y, s1))  # (B, c, D, H, W)
        return CGAOutput(self.end_conv(y), attention, proto, counts)
