"""What ``cga_kernels/ops/<op>.py`` declares about each of its low-level ``cga::`` ops.

``cga_kernels._library`` turns these declarations into dispatcher entries, once for the
``cga`` namespace (C++ on CPU, Triton on CUDA) and once for ``cga_triton`` (Triton anywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LowLevelOp:
    """One low-level op: ``schema`` without its name (``"(Tensor x, ...) -> Tensor"``), its fake
    kernel, and its autograd formula. ``backward(ctx, *grads)`` may call the other ops of the
    same namespace through ``ctx.ops`` (``torch.ops.cga`` or ``torch.ops.cga_triton``), which
    the registration sets before ``setup_context`` runs. Backward ops have no formula."""

    schema: str
    fake: Callable
    setup_context: Callable | None = None
    backward: Callable | None = None


def grad_or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Autograd hands None for an unused output and may hand a non-contiguous view."""
    return torch.zeros_like(like) if grad is None else grad.contiguous()
