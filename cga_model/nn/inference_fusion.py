"""Inference-only fusion of the BatchNorm residual blocks on the CPU: fewer passes over the activations.

A ``ResBlock`` in ``eval()`` runs seven passes over its activations: Norm, ReLU, Conv3, Norm, ReLU, Conv3 and
the residual sum. At the whole-box scale every element-wise pass reads and writes hundreds of megabytes, and
on a 2-core CPU they took about a quarter of a forward pass (``benchmarks/RESULTS.md``). ``FusedResBlock``
computes the same function in four:

- the second BatchNorm is an affine map per channel right after the first convolution, so it is folded into
  that convolution's weights and bias (exact up to float rounding);
- the ReLU after it runs as the convolution's oneDNN post-op (``mkldnn::_convolution_pointwise``);
- the residual sum runs as the second convolution's post-op (its ``"add"`` binary form);
- the first Norm and ReLU stay as they are (their input is also the residual, so nothing can absorb them).

Under autocast (``--precision bfloat16``) the activations are not float32: the folded convolutions then run as
``F.conv3d`` (autocast casts them) with the ReLU and the sum as passes of their own.

``FusedUpBlock`` drops the decoder's concatenation: the 1x1 convolution over ``[skip, upsampled]`` is the sum
of one over each part, the second taking the first as its ``"add"`` post-op.

``for_inference`` applies both to a network that ``cga predict`` runs: on the CPU, when oneDNN is there, to
every ``UpBlock`` and to the ``ResBlock``s whose norms are BatchNorm with running statistics. GroupNorm and
InstanceNorm residual blocks, other devices and networks in training are left as they are. The fused blocks
refuse ``train()`` mode: they hold weights folded with the running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResBlock, UpBlock
from .layout import to_fast_layout

_UNIT = [1, 1, 1]  # stride and dilation of the block's convolutions; padding 1 as well


def fold_norm(conv: nn.Conv3d, norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``norm(conv(x))`` as one convolution (``norm`` in eval: its running statistics).

    ``scale = gamma / sqrt(var + eps)``; ``W' = W * scale`` per output channel; ``b' = (b - mean) * scale + beta``.
    """
    with torch.no_grad():
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        weight = torch.empty_like(conv.weight).copy_(conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1))))
        return weight, (conv.bias - norm.running_mean) * scale + norm.bias  # empty_like keeps the weight's layout


class FusedResBlock(nn.Module):
    """A ``ResBlock`` with BatchNorm for inference: ``(B, C, D, H, W) -> (B, C, D, H, W)``, the same function in
    four passes (module docstring). Built from a trained block with ``FusedResBlock(block)``; CPU only."""

    def __init__(self, block: ResBlock):
        super().__init__()
        self.norm1 = block.norm1
        self.act = block.act
        weight1, bias1 = fold_norm(block.conv1, block.norm2)
        self.register_buffer("weight1", weight1)
        self.register_buffer("bias1", bias1)
        self.conv2 = block.conv2  # its own weights: nothing folds into it
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("FusedResBlock is for inference: its weights hold folded running statistics")
        h = self.act(self.norm1(x))
        if h.dtype != torch.float32:  # autocast: convolutions that autocast casts, post-ops as passes
            h = self.act(F.conv3d(h, self.weight1, self.bias1, padding=1))
            return self.conv2(h).add_(x)
        pointwise = torch.ops.mkldnn._convolution_pointwise
        h = pointwise(h, self.weight1, self.bias1, _UNIT, _UNIT, _UNIT, 1, "relu", [], "")
        weight, bias = self.conv2.weight, self.conv2.bias
        return pointwise.binary(h, x, weight, bias, _UNIT, _UNIT, _UNIT, 1, "add", None, None, [], None)


class FusedUpBlock(nn.Module):
    """An ``UpBlock`` for inference without its concatenation: ``x (B, C_in, D, H, W), skip (B, C_out, 2D, 2H, 2W)
    -> (B, C_out, 2D, 2H, 2W)``. The 1x1 convolution over ``[skip, up]`` is split by input channels into
    ``W_skip @ skip + b`` and ``W_up @ up``, the second run with the first as its ``"add"`` post-op."""

    def __init__(self, block: UpBlock):
        super().__init__()
        self.reduce, self.up = block.reduce, block.up
        skip_weight, up_weight = block.fuse.weight.detach().chunk(2, dim=1)  # the concat is [skip, upsampled]
        self.register_buffer("skip_weight", skip_weight.clone(memory_format=torch.preserve_format))
        self.register_buffer("up_weight", up_weight.clone(memory_format=torch.preserve_format))
        self.register_buffer("bias", block.fuse.bias.detach().clone())
        self.eval()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("FusedUpBlock is for inference: it holds a copy of the block's weights")
        up = self.up(self.reduce(x))
        from_skip = F.conv3d(skip, self.skip_weight, self.bias)
        if up.dtype != torch.float32:  # autocast, as in FusedResBlock
            return F.conv3d(up, self.up_weight).add_(from_skip)
        pointwise = torch.ops.mkldnn._convolution_pointwise
        return pointwise.binary(
            up, from_skip, self.up_weight, None, [0] * 3, _UNIT, _UNIT, 1, "add", None, None, [], None
        )


def fused(block: nn.Module) -> nn.Module | None:
    """The inference form of ``block``: a ``FusedUpBlock`` for an ``UpBlock``, a ``FusedResBlock`` for a
    ``ResBlock`` whose norms are BatchNorm with running statistics, else None."""
    if isinstance(block, UpBlock):
        return FusedUpBlock(block)
    norms = (getattr(block, "norm1", None), getattr(block, "norm2", None))
    batchnorm = all(isinstance(n, nn.modules.batchnorm._BatchNorm) and n.running_mean is not None for n in norms)
    return FusedResBlock(block) if isinstance(block, ResBlock) and batchnorm else None


def fuse_blocks(network: nn.Module) -> int:
    """Replace the blocks of ``network`` (in eval) that have a ``fused`` form by it, in place; returns how many
    were replaced."""
    if network.training:
        raise ValueError("fuse_blocks needs a network in eval(): fused blocks only run inference")
    parents = [(parent, name, child) for parent in network.modules() for name, child in parent.named_children()]
    replaced = 0
    for parent, name, child in parents:
        block = fused(child)
        if block is not None:
            setattr(parent, name, block)
            replaced += 1
    return replaced


def for_inference(network: nn.Module, device) -> nn.Module:
    """``network`` (in eval) as ``cga predict`` runs it on ``device``: ``to_fast_layout``, and on a CPU with oneDNN
    its blocks fused (``fuse_blocks``). In place; returns ``network``."""
    network = to_fast_layout(network.eval(), device)
    if torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available():
        fuse_blocks(network)
    return network
