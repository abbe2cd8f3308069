"""Tile helpers shared by the Triton kernels of every op: launch parameters, and the two
class-masked tile kernels, reduction (pooling) and broadcast (scatter-back).

Both use a class-mask tile ``M (K_PAD, BLOCK_N)``: the one-hot of the labels built in
registers (hard masks; label -1 matches no class) or the loaded weights (soft masks).

- ``masked_sums``: ``sums[b] = M x^T`` (``(K, C)``) and ``counts[b] = M 1`` per voxel block;
  fast mode adds block results with atomics, deterministic mode writes per-block partials
  that are summed in a fixed order.
- ``masked_broadcast``: ``out[b] = T^T M (+ residual)`` for a class table ``T (B, K, C)``.

Memory traffic per element of x ``(B, C, N)``: ``masked_sums`` reads x once (plus labels or
weights once per channel block); ``masked_broadcast`` writes out once and reads the residual
once. The fused update is thus 3 x-sized passes forward and 3 backward.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .._math import acc_dtype


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def deterministic() -> bool:
    """Deterministic mode (no float atomics, two-stage reductions) follows torch's global switch."""
    return torch.are_deterministic_algorithms_enabled()


def acc_tl(dtype: torch.dtype):
    """The Triton type of ``cga_kernels._math.acc_dtype(dtype)``."""
    return {torch.float64: tl.float64, torch.float32: tl.float32}[acc_dtype(dtype)]


def class_pad(num_classes: int) -> int:
    """Classes padded to a power of two >= 16 (the smallest ``tl.dot`` operand)."""
    return max(16, triton.next_power_of_2(num_classes))


CLASS_CHUNK = tl.constexpr(16)
"""Classes per ``tl.dot`` step: wider class tiles spill registers on GPUs (``python -m cga_kernels.triton.aot``)."""

GPU_TILE = 2048
"""Elements of the ``(BLOCK_C, BLOCK_N)`` feature tile on a GPU: larger ones spill registers in float32
(checked for sm_80 and sm_90 by ``cga_kernels.triton.aot``)."""


GPU_WARPS = 8
"""Warps per program of the tile kernels: with 4, float64 and soft-mask tiles spill a few bytes on sm_90."""


def tile_sizes(channels: int, n: int) -> tuple[int, int]:
    """``(BLOCK_C, BLOCK_N)``: channel blocks of 16-64 and voxel blocks filling a tile of
    ``GPU_TILE`` elements on a GPU, or of 64K elements (at most the padded ``n``) in the
    interpreter, where fewer, larger steps run faster."""
    block_c = min(64, max(16, triton.next_power_of_2(channels)))
    if interpreting():
        return block_c, min(max(16, (1 << 16) // block_c), max(16, triton.next_power_of_2(n)))
    return block_c, max(16, GPU_TILE // block_c)


@triton.jit
def _class_mask(lab, w_ptr, b, offs_n, mask_n, ks, K, N, SOFT: tl.constexpr, ACC: tl.constexpr):
    """The class-mask tile ``(len(ks), BLOCK_N)``: loaded weights, or the one-hot of ``lab``."""
    if SOFT:
        m = tl.load(
            w_ptr + b * K * N + ks[:, None] * N + offs_n[None, :], mask=(ks[:, None] < K) & mask_n[None, :], other=0.0
        )
        return m.to(ACC)
    return (lab[None, :] == ks[:, None]).to(ACC)


@triton.jit
def _masked_sums_kernel(
    x_ptr,
    lab_ptr,
    w_ptr,
    sums_ptr,
    counts_ptr,
    C,
    N,
    K,
    NB,
    SOFT: tl.constexpr,
    ATOMIC: tl.constexpr,
    ACC: tl.constexpr,
    K_PAD: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    cb = tl.program_id(1)
    nb = tl.program_id(2).to(tl.int64)
    offs_c = cb.to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    offs_n = nb * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    mask_c, mask_n = offs_c < C, offs_n < N
    x = tl.load(
        x_ptr + b * C * N + offs_c[:, None] * N + offs_n[None, :], mask=mask_c[:, None] & mask_n[None, :], other=0.0
    ).to(ACC)
    if SOFT:
        lab = offs_n  # unused: the mask tile comes from the weights
    else:
        lab = tl.load(lab_ptr + b * N + offs_n, mask=mask_n, other=-1)
    slot = b if ATOMIC else b * NB + nb
    for k0 in tl.static_range(0, K_PAD, CLASS_CHUNK):
        ks = k0 + tl.arange(0, CLASS_CHUNK).to(tl.int64)
        m = _class_mask(lab, w_ptr, b, offs_n, mask_n, ks, K, N, SOFT, ACC)
        part = tl.dot(m, tl.trans(x), input_precision="ieee")  # (CLASS_CHUNK, BLOCK_C)
        count = tl.sum(m, axis=1)  # (CLASS_CHUNK,)
        out_mask = (ks < K)[:, None] & mask_c[None, :]
        sums_at = sums_ptr + slot * K * C + ks[:, None] * C + offs_c[None, :]
        counts_at = counts_ptr + slot * K + ks
        if ATOMIC:
            tl.atomic_add(sums_at, part, mask=out_mask)
            if cb == 0:
                tl.atomic_add(counts_at, count, mask=ks < K)
        else:
            tl.store(sums_at, part, mask=out_mask)
            if cb == 0:
                tl.store(counts_at, count, mask=ks < K)


@triton.jit
def _masked_broadcast_kernel(
    table_ptr,
    lab_ptr,
    w_ptr,
    res_ptr,
    out_ptr,
    C,
    N,
    K,
    SOFT: tl.constexpr,
    RESIDUAL: tl.constexpr,
    ACC: tl.constexpr,
    K_PAD: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Soft masks: ``T^T W`` in class chunks; hard masks: a gather of table rows by label."""
    b = tl.program_id(0).to(tl.int64)
    offs_c = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    offs_n = tl.program_id(2).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    mask_c, mask_n = offs_c < C, offs_n < N
    io_mask = mask_c[:, None] & mask_n[None, :]
    if SOFT:
        y = tl.zeros((BLOCK_C, BLOCK_N), dtype=ACC)
        for k0 in tl.static_range(0, K_PAD, CLASS_CHUNK):
            ks = k0 + tl.arange(0, CLASS_CHUNK).to(tl.int64)
            table = tl.load(
                table_ptr + b * K * C + ks[None, :] * C + offs_c[:, None],
                mask=mask_c[:, None] & (ks[None, :] < K),
                other=0.0,
            ).to(ACC)
            m = _class_mask(offs_n, w_ptr, b, offs_n, mask_n, ks, K, N, SOFT, ACC)
            y += tl.dot(table, m, input_precision="ieee")  # (BLOCK_C, BLOCK_N)
    else:
        lab = tl.load(lab_ptr + b * N + offs_n, mask=mask_n, other=-1)
        valid = (lab >= 0) & (lab < K)
        y = tl.load(
            table_ptr + b * K * C + lab[None, :] * C + offs_c[:, None], mask=io_mask & valid[None, :], other=0.0
        ).to(ACC)
    tile = b * C * N + offs_c[:, None] * N + offs_n[None, :]
    if RESIDUAL:
        y += tl.load(res_ptr + tile, mask=io_mask, other=0.0).to(ACC)
    tl.store(out_ptr + tile, y.to(out_ptr.dtype.element_ty), mask=io_mask)


def _mask_args(labels, weights):
    soft = weights is not None
    return soft, (weights if soft else labels), (weights if soft else labels)


def masked_sums(x: torch.Tensor, num_classes: int, labels=None, weights=None):
    """``(sums (B, K, C), counts (B, K))`` in the accumulation dtype, for ``x (B, C, N)`` and
    ``labels (B, N)`` int64 (-1 ignored) or ``weights (B, K, N)``."""
    batch, channels, n = x.shape
    acc = acc_dtype(x.dtype)
    block_c, block_n = tile_sizes(channels, n)
    nb = triton.cdiv(n, block_n)
    grid = (batch, triton.cdiv(channels, block_c), nb)
    atomic = not deterministic()
    slots = batch if atomic else batch * nb
    sums = torch.zeros(slots, num_classes, channels, dtype=acc, device=x.device)
    counts = torch.zeros(slots, num_classes, dtype=acc, device=x.device)
    soft, lab, w = _mask_args(labels, weights)
    _masked_sums_kernel[grid](
        x,
        lab,
        w,
        sums,
        counts,
        channels,
        n,
        num_classes,
        nb,
        SOFT=soft,
        ATOMIC=atomic,
        ACC=acc_tl(x.dtype),
        K_PAD=class_pad(num_classes),
        BLOCK_C=block_c,
        BLOCK_N=block_n,
        num_warps=GPU_WARPS,
    )
    if not atomic:  # second stage: a fixed-order sum over the voxel blocks
        sums = sums.view(batch, nb, num_classes, channels).sum(1)
        counts = counts.view(batch, nb, num_classes).sum(1)
    return sums, counts


def masked_broadcast(table: torch.Tensor, n: int, out_dtype, labels=None, weights=None, residual=None) -> torch.Tensor:
    """``out (B, C, N) = table^T mask (+ residual)`` for ``table (B, K, C)``."""
    batch, num_classes, channels = table.shape
    block_c, block_n = tile_sizes(channels, n)
    out = torch.empty(batch, channels, n, dtype=out_dtype, device=table.device)
    grid = (batch, triton.cdiv(channels, block_c), triton.cdiv(n, block_n))
    soft, lab, w = _mask_args(labels, weights)
    _masked_broadcast_kernel[grid](
        table,
        lab,
        w,
        residual if residual is not None else out,
        out,
        channels,
        n,
        num_classes,
        SOFT=soft,
        RESIDUAL=residual is not None,
        ACC=acc_tl(table.dtype),
        K_PAD=class_pad(num_classes),
        BLOCK_C=block_c,
        BLOCK_N=block_n,
        num_warps=GPU_WARPS,
    )
    return out
