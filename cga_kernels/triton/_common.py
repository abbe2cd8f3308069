"""Launch parameters shared by the Triton kernels."""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def deterministic() -> bool:
    """Deterministic mode (no float atomics, two-stage reductions) follows torch's global switch."""
    return torch.are_deterministic_algorithms_enabled()


def acc_tl(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_torch(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def class_pad(num_classes: int) -> int:
    """Classes padded to a power of two >= 16 (the smallest ``tl.dot`` operand)."""
    return max(16, triton.next_power_of_2(num_classes))


def tile_sizes(channels: int, n: int) -> tuple[int, int]:
    """``(BLOCK_C, BLOCK_N)``: channel blocks of 16-64 and voxel blocks filling a tile of 8K
    elements on a GPU (register budget) or 64K in the interpreter (fewer, larger steps)."""
    block_c = min(64, max(16, triton.next_power_of_2(channels)))
    budget = (1 << 16) if interpreting() else (1 << 13)
    block_n = min(max(16, budget // block_c), max(16, triton.next_power_of_2(n)))
    return block_c, block_n
