"""Attention blocks compared in the benchmarks, at one 3-D feature map ``(B, C, D, H, W)``.

- ``NonLocalBlock``: embedded-Gaussian self-attention (Wang et al. 2018): 1x1 conv Q, K, V
  (``C -> C_i``), ``softmax(Q^T K)`` over ``N = D H W`` positions, ``V`` aggregation, output
  1x1 conv ``C_i -> C``, residual. Its ``N x N`` affinity is what grows quadratically.
- ``ContextPriorLayer``: Context Prior (Yu et al. 2020): an aggregation 3x3x3 conv, a 1x1 conv
  to ``N`` prior channels, sigmoid prior map ``P (N x N)``, intra-class context ``P X`` and
  inter-class context ``(1 - P) X`` by matrix multiplication, concatenated with the input and
  fused by a 1x1 conv; ``affinity_loss`` supervises ``P`` with the ideal affinity of the
  down-sampled ground truth (binary cross-entropy). Its prior conv has ``C N`` weights, so the
  layer only exists for one feature-map size.
- ``SAM``: the CGA U-Net's module: attention conv path on the input image (three 3x3x3 convs,
  ``log2(rate)`` of them stride 2) + ``cga_kernels.IntraClassUpdate``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import cga_kernels as ck
from cga_model.nn.attention import AttentionPath


class NonLocalBlock(nn.Module):
    def __init__(self, channels: int, inter_channels: int | None = None):
        super().__init__()
        ci = inter_channels or channels
        self.q = nn.Conv3d(channels, ci, 1)
        self.k = nn.Conv3d(channels, ci, 1)
        self.v = nn.Conv3d(channels, ci, 1)
        self.out = nn.Conv3d(ci, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, *spatial = x.shape
        q = self.q(x).flatten(2)  # (B, Ci, N)
        k = self.k(x).flatten(2)
        v = self.v(x).flatten(2)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N, N)
        y = (v @ attn.transpose(1, 2)).view(b, -1, *spatial)  # (B, Ci, *S)
        return x + self.out(y)


class ContextPriorLayer(nn.Module):
    def __init__(self, channels: int, spatial: tuple):
        super().__init__()
        self.n = math.prod(spatial)
        self.aggregate = nn.Conv3d(channels, channels, 3, padding=1)
        self.prior = nn.Conv3d(channels, self.n, 1)
        self.fuse = nn.Conv3d(3 * channels, channels, 1)

    def forward(self, x: torch.Tensor):
        b, c, *spatial = x.shape
        a = self.aggregate(x)
        prior = torch.sigmoid(self.prior(a).flatten(2).transpose(1, 2))  # (B, N, N)
        feats = a.flatten(2).transpose(1, 2)  # (B, N, C)
        intra = (prior @ feats) / self.n
        inter = ((1 - prior) @ feats) / self.n
        context = torch.cat([intra, inter], dim=2).transpose(1, 2).reshape(b, 2 * c, *spatial)
        return self.fuse(torch.cat([x, context], dim=1)), prior

    @staticmethod
    def affinity_loss(prior: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """BCE between the prior map and the ideal affinity ``A_ij = [label_i == label_j]`` (labels at the map size)."""
        onehot = F.one_hot(labels.flatten(1), num_classes).float()  # (B, N, K)
        ideal = onehot @ onehot.transpose(1, 2)
        return F.binary_cross_entropy(prior, ideal)


class SAM(nn.Module):
    """Attention conv path (input image -> K logits at 1/rate) + intra-class update of the features."""

    def __init__(self, in_channels: int = 4, num_classes: int = 4, rate: int = 8, mode: str = "hard"):
        super().__init__()
        self.path = AttentionPath(in_channels, num_classes, rate=rate)
        self.update = ck.IntraClassUpdate(num_classes, mode=mode)

    def forward(self, features: torch.Tensor, image: torch.Tensor):
        attention = self.path(image)
        return self.update(features, attention), attention
