"""Binds the public functions of the registry's rows to a namespace of low-level ops.

Each public function in ``cga_kernels/ops/<op>.py`` takes ``Kernels`` as its first argument:
``bind(kernels)`` gives them with it bound, ``torch.ops.cga`` for ``cga_kernels`` itself,
``torch.ops.cga_triton`` for ``cga_kernels.triton_ops``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

from .registry import public_functions


@dataclass(frozen=True)
class Kernels:
    """The low-level ops (``torch.ops.cga`` or ``torch.ops.cga_triton``) a public function calls.

    ``host_checks_on_cpu``: whether label-range and weight checks may read CPU tensors on the
    host (eager ``ValueError`` naming the bad value). Only the C++ kernels allow it: on CUDA,
    and on the Triton path on any device, the checks are device-side assertions, so no call
    waits for the device (``cga_kernels._validate.parse_mask``).
    """

    ops: object
    host_checks_on_cpu: bool


def _bound(fn, kernels: Kernels):
    @functools.wraps(fn)
    def public(*args, **kwargs):
        return fn(kernels, *args, **kwargs)

    signature = inspect.signature(fn)
    public.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return public


def bind(kernels: Kernels) -> dict:
    """``{name: public function calling kernels}`` for every public function of the registry, in row order."""
    return {fn.__name__: _bound(fn, kernels) for fn in public_functions()}
