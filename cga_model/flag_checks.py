"""Checks of single flag values, shared by every command (no torch, no data): each raises ``ValueError``
naming the flag, the value and the accepted range.

``number(flag, value, low, high, ...)``: a finite real within bounds (open or closed);
``whole(flag, value, minimum)``: an integer (not a bool) at least ``minimum``;
``window(flag, values)``: three whole voxel counts, each a positive multiple of ``SIZE_MULTIPLE``.
"""

from __future__ import annotations

import math
import numbers

from .nn.config import SIZE_MULTIPLE


def number(flag: str, value, low=None, high=None, *, low_open: bool = False, high_open: bool = False) -> None:
    """Refuse ``value`` unless it is a finite real in the interval from ``low`` to ``high`` (``None``: unbounded;
    ``low_open``/``high_open``: that end excluded)."""
    left = "" if low is None else f"{'>' if low_open else '>='} {low}"
    right = "" if high is None else f"{'<' if high_open else '<='} {high}"
    wanted = " and ".join(part for part in (left, right) if part) or "finite"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        raise ValueError(f"{flag} must be a finite number {wanted}, got {value!r}")


def whole(flag: str, value, minimum: int) -> None:
    """Refuse ``value`` unless it is an integer (a bool is not) of at least ``minimum``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{flag} must be a whole number of at least {minimum}, got {value!r}")


def window(flag: str, values) -> None:
    """Refuse ``values`` unless they are three whole voxel counts, each a positive multiple of ``SIZE_MULTIPLE``."""
    values = tuple(values)
    if len(values) != 3 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 and v % SIZE_MULTIPLE == 0 for v in values
    ):
        raise ValueError(
            f"{flag} must be three positive multiples of {SIZE_MULTIPLE} (voxels along X, Y, Z; the network halves "
            f"the size three times), got {' '.join(map(str, values))}"
        )
