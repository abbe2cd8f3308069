"""The memory layout a network runs in: channels-last-3d on the CPU when it has no GroupNorm or InstanceNorm.

oneDNN's 3-D convolutions run faster on ``(B, C, D, H, W)`` tensors stored channels-last
(``torch.channels_last_3d``, C innermost) than on contiguous ones (``benchmarks/RESULTS.md``: on a 2-core
AVX2 CPU one pass of the base-16 CGA U-Net over a brain box took about 6 s against about 10 s). A network
whose convolution weights are channels-last computes in that layout whatever the layout of its input, so
only the weights are converted.

Two exceptions keep the contiguous layout:

- a network with GroupNorm (``--norm gn``, the released code's) or InstanceNorm (``whole_volume.FIELD_NORMS``):
  PyTorch's channels-last GroupNorm on the CPU takes the variance as E[x^2] - E[x]^2 in float32, which
  cancels catastrophically when a channel's mean is large against its spread (a maximum error of
  0.0034 at mean 10, 0.20 at mean 100, against 1e-6 contiguous; ``tests/model/nn/test_layout.py``);
- other devices than the CPU: their layouts were not measured here.

Checkpoints store values: a network saved from either layout loads into either.
"""

from __future__ import annotations

import torch

from .whole_volume import field_norms


def fast_layout(network: torch.nn.Module, device) -> torch.memory_format:
    """``torch.channels_last_3d`` for ``network`` on a CPU ``device`` without ``field_norms``, else
    ``torch.contiguous_format``."""
    if torch.device(device).type != "cpu" or field_norms(network):
        return torch.contiguous_format
    return torch.channels_last_3d


def to_fast_layout(network: torch.nn.Module, device) -> torch.nn.Module:
    """``network`` with its weights in ``fast_layout(network, device)`` (in place, the same parameters)."""
    return network.to(memory_format=fast_layout(network, device))
