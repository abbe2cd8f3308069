"""One module per op: ``pool``, ``scatter``, ``intra_update``, ``distances`` (the names of
csrc/cpu/<op>.cpp and cga_kernels/triton/<op>.py). Each holds its low-level ops' schemas, fake
kernels and backward formulas (``LOW_LEVEL``) and its public function, written against
``Kernels`` (its first argument): a namespace of low-level ops and where the data-dependent
input checks run. ``bind(kernels)`` gives the public functions with it bound:
``torch.ops.cga`` for ``cga_kernels`` itself, ``torch.ops.cga_triton`` for
``cga_kernels.triton_ops``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

from . import distances, intra_update, pool, scatter

PUBLIC = (
    pool.prototype_pool,
    scatter.prototype_scatter,
    intra_update.intra_class_update,
    distances.prototype_distances,
    distances.inter_class_loss,
)


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


def bind(kernels: Kernels) -> tuple:
    """The public functions of ``PUBLIC``, in that order, calling ``kernels``."""
    return tuple(_bound(fn, kernels) for fn in PUBLIC)
