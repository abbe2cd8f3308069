"""Loading of the compiled CPU library (``cga_kernels/_C*.so``, built by ``pip install .``).

The library registers the ``cga::`` schemas and CPU kernels with the dispatcher; it is loaded
with ``torch.ops.load_library`` (no pybind11 module). A missing or broken build is reported
loudly, never papered over with the reference implementation.
"""

from __future__ import annotations

import glob
import os
import warnings

import torch

BUILD_HINT = "build it with `make install` or `pip install --no-build-isolation -e .` in the repository"


def load_library() -> tuple[bool, str]:
    """Load the compiled library; returns ``(loaded, path or reason)`` and warns when it fails."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_C*.so")) + glob.glob(os.path.join(here, "_C*.pyd")))
    if not found:
        reason = f"no compiled library _C*.so in {here}"
    else:
        try:
            torch.ops.load_library(found[0])
            return True, found[0]
        except OSError as err:
            reason = f"loading {found[0]} failed: {err}"
    warnings.warn(
        f"cga_kernels: the compiled CPU extension is MISSING ({reason}); the operators will raise until you {BUILD_HINT}. "
        "cga_kernels.reference still works.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False, reason


class MissingLibrary:
    """Stands in for ``torch.ops.cga`` when the library is missing: every op raises a clear error."""

    def __init__(self, reason: str):
        self.reason = reason

    def __getattr__(self, name: str):
        raise RuntimeError(f"cga_kernels: cannot run cga::{name}: the compiled extension is missing ({self.reason}); {BUILD_HINT}")
