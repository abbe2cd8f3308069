"""The one place matplotlib is set up: the non-interactive Agg backend (no display needed) and atomic PNGs."""

from __future__ import annotations

from ..data.file_safety import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (works on servers without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, dpi: int) -> None:
    """Write ``fig`` to ``path`` as PNG atomically (a failed write: ``WriteFailed`` naming ``path``), then close it."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi), what="the plot")
    finally:
        pyplot().close(fig)
