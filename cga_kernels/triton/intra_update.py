"""intra_class_update on Triton: ``cga::intra_update_hard`` / ``_soft`` and their backward ops.

Each function has the signature and semantics of the low-level op of the same name
(schemas: ``cga_kernels/ops/intra_update.py``). Forward: a class-masked reduction of x, then a
broadcast of the prototype table plus the residual (3 x-sized passes); backward: the same over
grad_y. Prototype arithmetic on ``(B, K, C)`` tables (divide by counts, class
selection) is tiny and done with torch ops between the kernel launches.
Soft-mask weight gradient (``_weight_grad_kernel``): reads x and grad_y once, writes
``(B, K, N)``, i.e. 2 x-sized reads.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._math import divide_by_counts
from ._tiles import GPU_TILE, acc_tl, class_pad, interpreting, masked_broadcast, masked_sums, tile_sizes


def _active(active: torch.Tensor, dtype) -> torch.Tensor:
    return active.to(dtype).view(1, -1, 1)


def _intra_update(x, active, residual, labels=None, weights=None):
    sums, counts = masked_sums(x, active.shape[0], labels=labels, weights=weights)
    proto = divide_by_counts(sums, counts)
    table = (proto * _active(active, proto.dtype)).contiguous()
    y = masked_broadcast(table, x.shape[2], x.dtype, labels=labels, weights=weights, residual=x if residual else None)
    return y, proto.to(x.dtype), counts


def intra_update_hard(x, labels, active, residual):
    return _intra_update(x, active, residual, labels=labels)


def intra_update_soft(x, weights, active, residual):
    return _intra_update(x, active, residual, weights=weights)


def _grad_table(grad_y, grad_proto, active, counts, labels=None, weights=None):
    """``H = (grad_proto + active * sum_n w g) / counts`` (0 for empty classes), accumulation dtype."""
    sums, _ = masked_sums(grad_y, active.shape[0], labels=labels, weights=weights)
    total = grad_proto.to(sums.dtype) + _active(active, sums.dtype) * sums
    return divide_by_counts(total, counts.to(sums.dtype)).contiguous()


def intra_update_hard_backward(grad_y, grad_proto, labels, active, counts, residual):
    grad_y = grad_y.contiguous()  # the tile kernels index rows as contiguous
    h = _grad_table(grad_y, grad_proto, active, counts, labels=labels)
    return masked_broadcast(h, grad_y.shape[2], grad_y.dtype, labels=labels, residual=grad_y if residual else None)


@triton.jit
def _weight_grad_kernel(
    a_ptr,
    g_ptr,
    h_ptr,
    x_ptr,
    bias_ptr,
    out_ptr,
    C,
    N,
    K,
    ACC: tl.constexpr,
    K_PAD: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """out[b, k, n] = sum_c A[b,k,c] g[b,c,n] + H[b,k,c] x[b,c,n] + bias[b,k]."""
    b = tl.program_id(0).to(tl.int64)
    offs_n = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    ks = tl.arange(0, K_PAD).to(tl.int64)
    mask_n, mask_k = offs_n < N, ks < K
    acc = tl.zeros((K_PAD, BLOCK_N), dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C).to(tl.int64)
        mask_c = offs_c < C
        kc = b * K * C + ks[:, None] * C + offs_c[None, :]
        kc_mask = mask_k[:, None] & mask_c[None, :]
        cn = b * C * N + offs_c[:, None] * N + offs_n[None, :]
        cn_mask = mask_c[:, None] & mask_n[None, :]
        a = tl.load(a_ptr + kc, mask=kc_mask, other=0.0).to(ACC)
        h = tl.load(h_ptr + kc, mask=kc_mask, other=0.0).to(ACC)
        g = tl.load(g_ptr + cn, mask=cn_mask, other=0.0).to(ACC)
        x = tl.load(x_ptr + cn, mask=cn_mask, other=0.0).to(ACC)
        acc += tl.dot(a, g, input_precision="ieee") + tl.dot(h, x, input_precision="ieee")
    acc += tl.load(bias_ptr + b * K + ks, mask=mask_k, other=0.0).to(ACC)[:, None]
    tl.store(
        out_ptr + b * K * N + ks[:, None] * N + offs_n[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=mask_k[:, None] & mask_n[None, :],
    )


def intra_update_soft_backward(grad_y, grad_proto, grad_counts, x, weights, active, proto, counts, residual):
    h = _grad_table(grad_y, grad_proto, active, counts, weights=weights)
    grad_x = masked_broadcast(h, x.shape[2], x.dtype, weights=weights, residual=grad_y if residual else None)
    p = proto.to(h.dtype)
    a = (p * _active(active, h.dtype)).contiguous()
    bias = (grad_counts.to(h.dtype) - (p * h).sum(-1)).contiguous()
    batch, channels, n = x.shape
    num_classes = weights.shape[1]
    grad_w = torch.empty_like(weights)
    block_c, block_n = tile_sizes(channels, n)
    block_c = min(block_c, 32)
    if not interpreting():  # the (K_PAD, BLOCK_N) accumulator must leave registers for the operand tiles
        block_c, block_n = 16, max(16, GPU_TILE // (2 * class_pad(num_classes)))
    grid = (batch, triton.cdiv(n, block_n))
    _weight_grad_kernel[grid](
        a,
        grad_y,
        h,
        x,
        bias,
        grad_w,
        channels,
        n,
        num_classes,
        ACC=acc_tl(x.dtype),
        K_PAD=class_pad(num_classes),
        BLOCK_C=block_c,
        BLOCK_N=block_n,
        num_warps=8 if class_pad(num_classes) >= 64 else 4,
    )  # 64 classes spill with 4 warps
    return grad_x, grad_w
