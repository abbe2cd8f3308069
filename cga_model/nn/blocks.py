"""Named building blocks of the CGA U-Net (paper Table 1, released-code layout).

Every block works on 5-D tensors ``(B, C, D, H, W)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .choices import NORMS


def make_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer of the residual blocks.

    - ``"bn"`` (default; what Table 1 says): ``BatchNorm3d``;
    - ``"gn"`` (released code): ``GroupNorm(8, C)``; when ``C`` is not a multiple of 8
      (small test models) the number of groups is ``gcd(8, C)``;
    - ``"in"``: ``InstanceNorm3d(affine=True)``;
    - ``"sync_bn"``: ``SyncBatchNorm`` for DDP (it behaves as BatchNorm outside a process group).

    All four have ``2 C`` learnable parameters, so the parameter count does not depend on the choice.
    """
    if kind == "gn":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "bn":
        return nn.BatchNorm3d(channels)
    if kind == "in":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "sync_bn":
        return nn.SyncBatchNorm(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def conv3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    """3x3x3 convolution with bias, padding 1 (``Conv3`` of Table 1)."""
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)


class InitConv(nn.Module):
    """InitConv: ``Conv3`` then channel dropout (``nn.Dropout3d``).

    ``(B, in, D, H, W) -> (B, C, D, H, W)``. The dropout follows ``train()``/``eval()``: it is
    OFF in ``eval()`` (the released code calls functional dropout without the training flag, so
    its predictions are random at test time; that fault is not copied).
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.2):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.conv = conv3(in_channels, out_channels)
        self.dropout = nn.Dropout3d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.conv(x))


class ResBlock(nn.Module):
    """Pre-activation residual block (EnBlock / DeBlock): Norm, ReLU, Conv3, Norm, ReLU, Conv3, + input.

    ``(B, C, D, H, W) -> (B, C, D, H, W)``. The ReLUs and the residual sum write over tensors the block made
    and autograd does not keep (a norm's output, the second convolution's), so no full-size tensor is
    allocated for them (at the whole-box scale every fresh allocation costs page faults as well as memory).
    """

    def __init__(self, channels: int, norm: str = "bn"):
        super().__init__()
        self.norm1 = make_norm(norm, channels)
        self.conv1 = conv3(channels, channels)
        self.norm2 = make_norm(norm, channels)
        self.conv2 = conv3(channels, channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.act(self.norm1(x)))
        y = self.conv2(self.act(self.norm2(y)))
        return y.add_(x)


class DownConv(nn.Conv3d):
    """EnDown: a 3x3x3 stride-2 convolution ``C -> C_out``; ``(B, C, D, H, W) -> (B, C_out, D/2, H/2, W/2)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=2, padding=1)


class UpBlock(nn.Module):
    """DeUp: 1x1 conv halving the channels, 2x2x2 stride-2 transposed conv, concat with the skip, 1x1 conv.

    ``x (B, C_in, D, H, W), skip (B, C_out, 2D, 2H, 2W) -> (B, C_out, 2D, 2H, 2W)`` (the concat is
    ``[skip, upsampled]``, as in the released code).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.reduce = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.up = nn.ConvTranspose3d(out_channels, out_channels, kernel_size=2, stride=2)
        self.fuse = nn.Conv3d(2 * out_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([skip, self.up(self.reduce(x))], dim=1))
