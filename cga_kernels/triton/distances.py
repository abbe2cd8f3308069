"""prototype_distances on Triton: cga::pair_distances and cga::pair_distances_backward.

``pair_distances``: one program per (b, i, j) pair, the squared difference summed over channel
blocks (direct differences, no expansion). ``pair_distances_backward``: one program per
(b, i, channel block), ``sum_j (g_ij + g_ji) (p_i - p_j) / d_ij`` over pairs with ``d_ij > 0``.
Traffic is O(B K^2 C), negligible next to the voxel kernels.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._math import acc_dtype
from ._tiles import acc_tl


@triton.jit
def _distances_kernel(p_ptr, present_ptr, out_ptr, K, C, ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    b, i, j = pid // (K * K), (pid // K) % K, pid % K
    acc = tl.zeros((BLOCK_C,), dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        offs = c0 + tl.arange(0, BLOCK_C)
        mask = offs < C
        pi = tl.load(p_ptr + (b * K + i) * C + offs, mask=mask, other=0.0).to(ACC)
        pj = tl.load(p_ptr + (b * K + j) * C + offs, mask=mask, other=0.0).to(ACC)
        acc += (pi - pj) * (pi - pj)
    on = (tl.load(present_ptr + b * K + i) != 0) & (tl.load(present_ptr + b * K + j) != 0) & (i != j)
    dist = tl.where(on, tl.sqrt(tl.sum(acc, axis=0)), 0.0)
    tl.store(out_ptr + pid, dist.to(out_ptr.dtype.element_ty))


@triton.jit
def _distances_backward_kernel(g_ptr, p_ptr, d_ptr, out_ptr, K, C, ACC: tl.constexpr, BLOCK_C: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)  # b * K + i
    b, i = row // K, row % K
    offs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = offs < C
    pi = tl.load(p_ptr + row * C + offs, mask=mask, other=0.0).to(ACC)
    acc = tl.zeros((BLOCK_C,), dtype=ACC)
    for j in range(0, K):
        d = tl.load(d_ptr + (b * K + i) * K + j).to(ACC)
        g = tl.load(g_ptr + (b * K + i) * K + j).to(ACC) + tl.load(g_ptr + (b * K + j) * K + i).to(ACC)
        scale = tl.where(d > 0, g / tl.where(d > 0, d, 1.0), 0.0)
        pj = tl.load(p_ptr + (b * K + j) * C + offs, mask=mask, other=0.0).to(ACC)
        acc += scale * (pi - pj)
    tl.store(out_ptr + row * C + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _block(channels: int) -> int:
    return min(1024, max(16, triton.next_power_of_2(channels)))


def pair_distances(proto, present):
    batch, num_classes, channels = proto.shape
    out = torch.empty(batch, num_classes, num_classes, dtype=proto.dtype, device=proto.device)
    _distances_kernel[(batch * num_classes * num_classes,)](
        proto,
        present.to(torch.int8).contiguous(),
        out,
        num_classes,
        channels,
        ACC=acc_tl(proto.dtype),
        BLOCK_C=_block(channels),
    )
    return out


def pair_distances_backward(grad, proto, dist):
    batch, num_classes, channels = proto.shape
    out = torch.empty_like(proto, memory_format=torch.contiguous_format)
    block = _block(channels)
    grid = (batch * num_classes, triton.cdiv(channels, block))
    _distances_backward_kernel[grid](
        grad.to(acc_dtype(proto.dtype)).contiguous(),
        proto,
        dist.contiguous(),
        out,
        num_classes,
        channels,
        ACC=acc_tl(proto.dtype),
        BLOCK_C=block,
    )
    return out
