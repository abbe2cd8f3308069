"""The ``cga::`` op library: schemas defined here, in Python, and implementations bound per device.

- Schemas, fake kernels and autograd formulas of every low-level op come from the rows of
  ``cga_kernels.registry`` (declared in ``cga_kernels/ops/<op>.py``) and are registered
  without the compiled library.
- CPU: the compiled C++ library ``cga_kernels/_C*.so`` (built by ``pip install .``) registers
  its kernels with ``TORCH_LIBRARY_IMPL(cga, CPU, m)``; it is loaded with
  ``torch.ops.load_library`` (no pybind11 module).
- CUDA: the Triton launchers of ``cga_kernels/triton/<op>.py``; the same launchers also
  form the ``cga_triton::`` namespace, which runs them on any device.

Either implementation may be missing without the other (a CUDA machine whose C++ build failed
still runs Triton; a machine without Triton still runs C++). A missing one is reported loudly
at import and by ``cga_kernels.backend()``, and calling it raises a ``RuntimeError`` saying
why; nothing falls back silently to the reference.
"""

from __future__ import annotations

import functools
import glob
import os
import warnings

import torch

from .registry import low_level_ops

LOW_LEVEL = low_level_ops()
BUILD_HINT = "build it with `make install` or `pip install --no-build-isolation -e .` in the repository"
_LIBRARIES = []  # torch.library.Library objects must stay alive for their registrations to last


def _with_ops(setup_context, ops):
    """``setup_context`` that first gives the backward ``ctx.ops``, the namespace it was registered for."""

    @functools.wraps(setup_context)
    def setup(ctx, inputs, output):
        ctx.ops = ops
        setup_context(ctx, inputs, output)

    return setup


def _register_formulas(namespace: str) -> None:
    """Fake kernels and autograd of every low-level op of ``namespace``."""
    ops = getattr(torch.ops, namespace)
    for name, op in LOW_LEVEL.items():
        torch.library.register_fake(f"{namespace}::{name}", op.fake)
        if op.backward is not None:
            torch.library.register_autograd(
                f"{namespace}::{name}", op.backward, setup_context=_with_ops(op.setup_context, ops)
            )


def _define_cga() -> None:
    lib = torch.library.Library("cga", "DEF")
    for name, op in LOW_LEVEL.items():
        lib.define(f"{name}{op.schema}")
    _LIBRARIES.append(lib)
    _register_formulas("cga")


def _missing(name: str, what: str, reason: str):
    def unavailable(*args, **kwargs):
        raise RuntimeError(f"cga_kernels: cannot run cga::{name}: {what} ({reason})")

    return unavailable


def _register_for(device: str, kernels: dict, what: str = "", reason: str = "") -> None:
    """Python kernels of the ``cga::`` ops for ``device`` (``CPU``/``CUDA``): ``kernels`` or, when
    empty, stand-ins that raise saying ``what`` is missing and why."""
    lib = torch.library.Library("cga", "IMPL")
    for name in LOW_LEVEL:
        lib.impl(name, kernels[name] if kernels else _missing(name, what, reason), device)
    _LIBRARIES.append(lib)


def load_cpu_library() -> tuple[bool, str]:
    """Load the compiled CPU kernels; returns ``(loaded, path or reason)`` and warns when it fails."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_C*.so")) + glob.glob(os.path.join(here, "_C*.pyd")))
    if not found:
        reason = f"no compiled library _C*.so in {here}"
    else:
        try:
            torch.ops.load_library(found[0])
            return True, found[0]
        except (OSError, RuntimeError) as err:
            reason = f"loading {found[0]} failed: {err}"
    warnings.warn(
        f"cga_kernels: the compiled CPU extension is MISSING ({reason}); "
        f"CPU tensors will raise until you {BUILD_HINT}. "
        "The Triton (CUDA) kernels and cga_kernels.reference still work.",
        RuntimeWarning,
        stacklevel=4,
    )
    return False, reason


def load_triton_kernels() -> tuple[bool, str]:
    """Register the Triton launchers for CUDA and as ``cga_triton::`` ops; ``(loaded, status or reason)``."""
    try:
        from .triton import KERNELS
    except ImportError as err:
        return False, f"Triton kernels not importable ({err})"
    _register_for("CUDA", KERNELS)
    for name, op in LOW_LEVEL.items():
        torch.library.custom_op(f"cga_triton::{name}", KERNELS[name], mutates_args=(), schema=op.schema)
    _register_formulas("cga_triton")
    if torch.cuda.is_available():
        return True, "triton"
    return (
        True,
        "unavailable: no CUDA device (Triton kernels registered for CUDA; verified here only under TRITON_INTERPRET=1)",
    )


_define_cga()
CPU_LOADED, CPU_DETAIL = load_cpu_library()
if not CPU_LOADED:
    _register_for("CPU", {}, what="the compiled extension is missing", reason=f"{CPU_DETAIL}; {BUILD_HINT}")
TRITON_LOADED, CUDA_DETAIL = load_triton_kernels()
if not TRITON_LOADED:
    _register_for("CUDA", {}, what="the Triton kernels are unavailable", reason=CUDA_DETAIL)


def backend() -> dict:
    """Which implementation serves each device.

    ``{"cpu": "compiled" or "MISSING: <reason>", "cpu_library": <path of the .so> or None,
    "cuda": "triton" or "unavailable: <reason>"}``. The two are independent: either may be
    missing without the other.
    """
    return {
        "cpu": "compiled" if CPU_LOADED else f"MISSING: {CPU_DETAIL}",
        "cpu_library": CPU_DETAIL if CPU_LOADED else None,
        "cuda": CUDA_DETAIL if TRITON_LOADED else f"unavailable: {CUDA_DETAIL}",
    }
