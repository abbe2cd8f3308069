"""Named building blocks of the CGA U-Net (paper Table 1, released-code layout)."""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("gn", "bn", "in", "sync_bn")


def make_norm(kind: str, channels: int) -> nn.Module:
    """GroupNorm(8) (released code, default), BatchNorm (Table 1), InstanceNorm or SyncBatchNorm (DDP)."""
    if kind == "gn":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "bn":
        return nn.BatchNorm3d(channels)
    if kind == "in":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "sync_bn":
        return nn.SyncBatchNorm(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def conv3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """Pre-activation residual block (EnBlock / DeBlock): Norm, ReLU, Conv3, Norm, ReLU, Conv3, + input.

    ``(B, C, D, H, W) -> (B, C, D, H, W)``.
    """

    def __init__(self, channels: int, norm: str = "gn"):
        super().__init__()
        self.norm1 = make_norm(norm, channels)
        self.conv1 = conv3(channels, channels)
        self.norm2 = make_norm(norm, channels)
        self.conv2 = conv3(channels, channels)
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.act(self.norm1(x)))
        y = self.conv2(self.act(self.norm2(y)))
        return y + x


class UpBlock(nn.Module):
    """DeUp: 1x1 conv halving channels, 2x2x2 stride-2 transposed conv, concat with the skip, 1x1 conv.

    ``x (B, 2C, D, H, W), skip (B, C, 2D, 2H, 2W) -> (B, C, 2D, 2H, 2W)``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.reduce = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.up = nn.ConvTranspose3d(out_channels, out_channels, kernel_size=2, stride=2)
        self.fuse = nn.Conv3d(2 * out_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([skip, self.up(self.reduce(x))], dim=1))


class AttentionPath(nn.Module):
    """The SAM attention conv path on the input image: three 3x3x3 convs ``in -> 16 -> 16 -> K``.

    ``rate`` (8, 4 or 2) sets how many of the convs are stride 2 (the last ``log2(rate)``);
    no norm or activation between them (released code). ``(B, in, D, H, W) -> (B, K, D/r, H/r, W/r)``.
    """

    RATES = {8: (2, 2, 2), 4: (1, 2, 2), 2: (1, 1, 2)}

    def __init__(self, in_channels: int, num_classes: int, rate: int = 8, width: int = 16):
        super().__init__()
        if rate not in self.RATES:
            raise ValueError(f"attention_rate must be one of {sorted(self.RATES)}, got {rate!r}")
        s1, s2, s3 = self.RATES[rate]
        self.conv1 = conv3(in_channels, width, s1)
        self.conv2 = conv3(width, width, s2)
        self.conv3 = conv3(width, num_classes, s3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(image)))
