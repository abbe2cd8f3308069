"""One module per op: ``pool``, ``scatter``, ``intra_update``, ``distances`` (the names of
csrc/cpu/<op>.cpp and cga_kernels/triton/<op>.py). Each holds its low-level ops' schemas, fake
kernels and backward formulas (``LOW_LEVEL``) and its public function, written against a
namespace of low-level ops ``ops`` (its first argument). ``bind(ops)`` gives the public
functions with that namespace bound: ``torch.ops.cga`` for ``cga_kernels`` itself,
``torch.ops.cga_triton`` for ``cga_kernels.triton_ops``.
"""

from __future__ import annotations

import functools
import inspect

from . import distances, intra_update, pool, scatter

PUBLIC = (pool.prototype_pool, scatter.prototype_scatter, intra_update.intra_class_update, distances.prototype_distances, distances.inter_class_loss)


def _bound(fn, ops):
    @functools.wraps(fn)
    def public(*args, **kwargs):
        return fn(ops, *args, **kwargs)

    signature = inspect.signature(fn)
    public.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return public


def bind(ops) -> tuple:
    """The public functions of ``PUBLIC``, in that order, calling the low-level ops of ``ops``."""
    return tuple(_bound(fn, ops) for fn in PUBLIC)
