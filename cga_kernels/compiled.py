"""The public operators bound to the ``cga::`` library: C++ on CPU, Triton on CUDA.

Importing this module loads the compiled library, registers the fake kernels and autograd
formulas of the ``cga::`` ops, and registers the Triton kernels as their CUDA implementation
when Triton is importable.
"""

from __future__ import annotations

import torch

from ._autograd import register_autograd
from ._fake import register_fake
from ._loader import MissingLibrary, load_library
from .ops import KernelFront

_LOADED, _CPU_DETAIL = load_library()
if _LOADED:
    register_fake("cga")
    register_autograd("cga")


def _register_cuda() -> str:
    try:
        from .triton import register_cuda_kernels, triton_status
    except ImportError as err:
        return f"unavailable: Triton kernels not importable ({err})"
    register_cuda_kernels()
    return triton_status()


_CUDA_STATUS = _register_cuda() if _LOADED else "unavailable: the cga library itself is missing"

_front = KernelFront(torch.ops.cga if _LOADED else MissingLibrary(_CPU_DETAIL))
prototype_pool = _front.prototype_pool
prototype_scatter = _front.prototype_scatter
intra_class_update = _front.intra_class_update
prototype_distances = _front.prototype_distances
inter_class_loss = _front.inter_class_loss


def backend() -> dict:
    """Which implementation serves each device, e.g. ``{"cpu": "compiled", "cuda": "triton", ...}``.

    ``cpu`` is ``"compiled"`` or ``"MISSING: <reason>"``; ``cpu_library`` is the loaded file;
    ``cuda`` is ``"triton"`` or ``"unavailable: <reason>"``.
    """
    return {
        "cpu": "compiled" if _LOADED else f"MISSING: {_CPU_DETAIL}",
        "cpu_library": _CPU_DETAIL if _LOADED else None,
        "cuda": _CUDA_STATUS,
    }
