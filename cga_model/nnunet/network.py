"""Category-guided attention on the network nnU-Net plans (``PlainConvUNet``, ``ResidualEncoderUNet``).

``guided_network(host, pool_op_kernel_sizes, num_input_channels, num_categories)`` wraps the
host U-Net with ``cga_model.nn.dropin.CategoryGuidedAttention``: the paper's attention conv
path on the network input and the intra-class update on the output of one encoder stage
(``encoder.stages.<stage>``; default the last one, the bottleneck). The result is a
``GuidedNetwork``: its forward returns exactly what the host returns (nnU-Net's list of outputs,
highest resolution first, with deep supervision; one tensor without), so nnU-Net's training
loop, validation and predictor use it unchanged; the attention logits, prototypes and counts of
the last forward stay in ``network.last_result`` for the loss (``cga_model.nnunet.loss.GuidedLoss``).

Attention rate: ``r = min(8, smallest total stride of that stage over the axes)`` (8 as in the
paper when every axis is pooled at least 8 times). nnU-Net patch sizes are multiples of the total
stride on each axis, so the ``(B, K, *patch / r)`` attention map is an integer multiple of the
stage's feature map on every axis, and ``IntraClassUpdate`` resamples it (nearest for hard masks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..nn.attention import PATH_STRIDES
from ..nn.dropin import CategoryGuidedAttention, GuidedOutput

MAX_ATTENTION_RATE = 8


def attention_rate(pool_op_kernel_sizes: Sequence[Sequence[int]]) -> int:
    """``min(8, min over axes of the product of the strides)`` of the stages up to the updated one
    (``pool_op_kernel_sizes``): a rate the attention path supports (1, 2, 4 or 8) that divides the
    patch size on every axis."""
    totals = [math.prod(int(s[axis]) for s in pool_op_kernel_sizes) for axis in range(len(pool_op_kernel_sizes[0]))]
    rate = min(MAX_ATTENTION_RATE, min(totals))
    if rate not in PATH_STRIDES:
        raise ValueError(
            f"the plans' total strides per axis {totals} give attention rate {rate}; "
            f"the attention path supports {sorted(PATH_STRIDES)} (use pooling by 2 on every axis)"
        )
    return rate


class GuidedNetwork(CategoryGuidedAttention):
    """``CategoryGuidedAttention`` returning the host's output, for nnU-Net's training loop and predictor.

    ``forward(x (B, C_in, *patch))`` returns the host output (a list of ``(B, heads, *S_i)`` with deep
    supervision, else ``(B, heads, *patch)``) and keeps ``last_result``: the ``GuidedOutput`` with
    ``attention (B, K, *patch / rate)``, ``prototypes (B, K, C_f)``, ``counts (B, K)``.
    ``decoder`` is the host's, so nnU-Net's ``set_deep_supervision_enabled`` works as for its own U-Net.
    """

    last_result: GuidedOutput | None = None

    @property
    def decoder(self) -> nn.Module:
        return self.network.decoder

    def forward(self, x: torch.Tensor):
        self.last_result = super().forward(x)
        return self.last_result.output


def guided_network(
    host: nn.Module,
    *,
    pool_op_kernel_sizes: Sequence[Sequence[int]],
    num_input_channels: int,
    num_categories: int,
    stage: int = -1,
    mode: str = "hard",
) -> GuidedNetwork:
    """Wrap an nnU-Net ``host`` (with ``encoder.stages``) at encoder stage ``stage`` (-1: the bottleneck);
    see the module docstring."""
    stages = getattr(getattr(host, "encoder", None), "stages", None)
    if stages is None or not hasattr(host, "decoder"):
        raise ValueError(
            f"{type(host).__name__} has no encoder.stages and decoder: nnUNetTrainerCGA supports nnU-Net's "
            "U-Nets (PlainConvUNet, ResidualEncoderUNet)"
        )
    if not -len(stages) <= stage < len(stages):
        raise ValueError(f"update stage {stage} does not exist: the network has {len(stages)} encoder stages")
    index = stage % len(stages)
    return GuidedNetwork(
        host,
        f"encoder.stages.{index}",
        num_categories,
        head="input",
        in_channels=num_input_channels,
        rate=attention_rate(pool_op_kernel_sizes[: index + 1]),
        spatial_dims=len(pool_op_kernel_sizes[0]),
        mode=mode,
    )
