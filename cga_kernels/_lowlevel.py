"""What ``cga_kernels/ops/<op>.py`` declares about each of its low-level ``cga::`` ops.

``cga_kernels.registry`` gathers these declarations, one row per op; ``cga_kernels._library``
turns them into dispatcher entries, once for the ``cga`` namespace (C++ on CPU, Triton on
CUDA) and once for ``cga_triton`` (Triton anywhere); ``cga_kernels.onnx``,
``cga_kernels.flops`` and ``cga_kernels.triton.aot`` read their other fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LowLevelOp:
    """One low-level op.

    - ``schema``: without its name (``"(Tensor x, ...) -> Tensor"``);
    - ``fake``: the fake (meta) kernel, same arguments as the op;
    - ``aot_example(t)``: the op's arguments built from ``t``, the meta tensors of
      ``cga_kernels.triton.aot.MetaTensors``, on which the AOT check calls its Triton launcher;
    - ``setup_context`` and ``backward``: its autograd formula; ``backward(ctx, *grads)`` may
      call the other ops of the same namespace through ``ctx.ops`` (``torch.ops.cga`` or
      ``torch.ops.cga_triton``), which the registration sets before ``setup_context`` runs;
    - ``onnx``: its ONNX translation (standard operators, see ``cga_kernels.onnx``);
    - ``flops(*shapes, **_)``: its FLOP count from the argument shapes, for ``FlopCounterMode``.

    A forward op has all of them. A backward op (name ending in ``_backward``) has neither
    ONNX translation nor FLOP count (export and the model card are forward only), and an
    autograd formula only where it is differentiated again.
    """

    schema: str
    fake: Callable
    aot_example: Callable
    setup_context: Callable | None = None
    backward: Callable | None = None
    onnx: Callable | None = None
    flops: Callable | None = None


def grad_or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Autograd hands None for an unused output and may hand a non-contiguous view."""
    return torch.zeros_like(like) if grad is None else grad.contiguous()
