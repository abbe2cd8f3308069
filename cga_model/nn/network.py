"""The CGA U-Net (paper Table 1) and its baseline / ablations, built on ``cga_kernels``."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from .attention import SAM
from .blocks import DownConv, InitConv, ResBlock, UpBlock
from .config import SIZE_MULTIPLE, ModelConfig


class CGAOutput(NamedTuple):
    """What ``CGAUNet.forward`` returns.

    - ``logits``: ``(B, K, D, H, W)`` segmentation **logits** (pre-softmax; the paper's Softmax
      layer is applied by the Dice loss and by ``logits.softmax(1)`` / ``argmax(1)`` at inference);
    - ``attention``: ``(B, K, D/r, H/r, W/r)`` attention logits, ``r = attention_rate``
      (None without SAM);
    - ``prototypes``: ``(B, K, C_r)`` class prototypes of the feature map the SAM works on
      (``C_r`` = 8c, 4c, 2c for r = 8, 4, 2), in the features' dtype; ``counts``: ``(B, K)``
      voxels (hard) or summed weights (soft) per class, float32 (float64 for a float64 model).
      Both None without SAM or with ``inter=False`` (they feed the inter-class loss).
    """

    logits: torch.Tensor
    attention: torch.Tensor | None
    prototypes: torch.Tensor | None
    counts: torch.Tensor | None


class CGAUNet(nn.Module):
    """Category Guided Attention U-Net (Li et al., Table 1).

    Encoder: InitConv (Conv3 ``in -> c`` + channel dropout), EnBlock1, EnDown1 (``-> 2c``),
    2x EnBlock2, EnDown2 (``-> 4c``), 2x EnBlock3, EnDown3 (``-> 8c``), 4x EnBlock4.
    Decoder: three levels of (DeUp, DeBlock), EndConv 1x1 ``c -> K``. ``c = base_channels``.

    SAM (``sam=True``): an attention conv path on the input image (``cga_model.attention``)
    whose argmax (``mask_mode="hard"``, released code) or softmax (``"soft"``, differentiable
    variant) drives ``cga_kernels.IntraClassUpdate`` (residual) on the encoder feature map at
    ``1/attention_rate``: rate 8 -> EnBlock4 output (the bottleneck, paper), rate 4 ->
    EnBlock3 output, rate 2 -> EnBlock2 output. The updated map continues down the encoder
    and is the skip connection of its level.

    Built from a ``ModelConfig`` (``CGAUNet(config)``, ``CGAUNet.from_config(saved_dict)``); keyword
    options override its fields (``CGAUNet(base_channels=8)``); ``CGAUNet()`` is the paper's network.

    Options (fields of ``ModelConfig``):
        in_channels: image channels (4 MR sequences).
        num_classes: K (4: background + three tumour classes).
        base_channels: c (16 in the paper).
        norm: ``"bn"`` (BatchNorm, Table 1, default), ``"gn"`` (GroupNorm(8), released code), ``"in"``,
            ``"sync_bn"`` (DDP).
        sam: False gives the baseline U-Net of the ablation (same weights minus the attention path).
        intra: apply the intra-class update (``False``: "Baseline + Inter" when ``inter``).
        intra_classes: network class indices the update writes back to (ablation "Intra
            (class1/2/4)" = ``[1]``, ``[2]``, ``[3]``); ``None`` = all classes.
        inter: return prototypes/counts for the inter-class loss.
        attention_rate: 8, 4 or 2 (Table 3).
        mask_mode: ``"hard"`` or ``"soft"``.
        dropout: ``nn.Dropout3d`` probability after InitConv; active in ``train()`` only.
        attention_channels: width of the attention path (16).
        attention_path: ``"linear"`` (three convolutions, released code) or ``"relu"`` (a ReLU between them).

    Input ``(B, in_channels, D, H, W)`` with D, H, W multiples of 8, else ``ValueError``.
    Parameters at the defaults: 4,768,616 (10,404 in the attention path). The released network
    has 4,768,617: one extra scalar parameter that its forward never uses.
    """

    def __init__(self, config: ModelConfig | None = None, **options):
        super().__init__()
        config = dataclasses.replace(config or ModelConfig(), **options)
        self.config = config
        c, norm = config.base_channels, config.norm
        self.in_channels, self.num_classes, self.base_channels = config.in_channels, config.num_classes, c
        self.attention_rate, self.mask_mode = config.attention_rate, config.mask_mode
        self.init_conv = InitConv(config.in_channels, c, config.dropout)
        self.en_block1 = ResBlock(c, norm)
        self.en_down1 = DownConv(c, 2 * c)
        self.en_block2 = nn.Sequential(*[ResBlock(2 * c, norm) for _ in range(2)])
        self.en_down2 = DownConv(2 * c, 4 * c)
        self.en_block3 = nn.Sequential(*[ResBlock(4 * c, norm) for _ in range(2)])
        self.en_down3 = DownConv(4 * c, 8 * c)
        self.en_block4 = nn.Sequential(*[ResBlock(8 * c, norm) for _ in range(4)])
        self.de_up3 = UpBlock(8 * c, 4 * c)
        self.de_block3 = ResBlock(4 * c, norm)
        self.de_up2 = UpBlock(4 * c, 2 * c)
        self.de_block2 = ResBlock(2 * c, norm)
        self.de_up1 = UpBlock(2 * c, c)
        self.de_block1 = ResBlock(c, norm)
        self.end_conv = nn.Conv3d(c, config.num_classes, kernel_size=1)
        self.sam: SAM | None = None
        if config.sam:
            self.sam = SAM(
                config.in_channels,
                config.num_classes,
                rate=config.attention_rate,
                mask_mode=config.mask_mode,
                intra=config.intra,
                intra_classes=config.intra_classes,
                inter=config.inter,
                width=config.attention_channels,
                gate=config.update_gate and config.intra,
                path=config.attention_path,
                feature_channels=c * config.attention_rate,  # EnBlock2, 3 or 4 output: 2c, 4c, 8c
            )

    @classmethod
    def from_config(cls, config) -> CGAUNet:
        """Build from a ``ModelConfig`` or its ``to_dict()`` form (as stored in checkpoints)."""
        return cls(config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError``/``TypeError`` unless ``x`` is a floating ``(B, in_channels, D, H, W)`` with D, H, W
        multiples of 8."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
        if x.dim() != 5:
            raise ValueError(f"input must have shape (B, C, D, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels, the model expects {self.in_channels}")
        if any(s % SIZE_MULTIPLE or s == 0 for s in x.shape[2:]):
            raise ValueError(
                f"input spatial size {tuple(x.shape[2:])} must be divisible by {SIZE_MULTIPLE} "
                f"(three stride-2 levels and the 1/{self.attention_rate} attention map); pad or crop it"
            )

    def forward(self, x: torch.Tensor) -> CGAOutput:
        self.check_input(x)
        rate = self.attention_rate if self.sam is not None else None
        attention = proto = counts = None
        s1 = self.en_block1(self.init_conv(x))  # (B, c, D, H, W)
        s2 = self.en_block2(self.en_down1(s1))  # (B, 2c, D/2, H/2, W/2)
        if rate == 2:
            s2, attention, proto, counts = self.sam(s2, x)
        s3 = self.en_block3(self.en_down2(s2))  # (B, 4c, D/4, ...)
        if rate == 4:
            s3, attention, proto, counts = self.sam(s3, x)
        bottom = self.en_block4(self.en_down3(s3))  # (B, 8c, D/8, ...)
        if rate == 8:
            bottom, attention, proto, counts = self.sam(bottom, x)
        y = self.de_block3(self.de_up3(bottom, s3))  # (B, 4c, D/4, ...)
        y = self.de_block2(self.de_up2(y, s2))  # (B, 2c, D/2, ...)
        y = self.de_block1(self.de_up1(y, s1))  # (B, c, D, H, W)
        return CGAOutput(self.end_conv(y), attention, proto, counts)

    def extra_repr(self) -> str:
        return (
            f"base_channels={self.base_channels}, num_classes={self.num_classes}, attention_rate={self.attention_rate}"
        )
