"""The brain of a skull-stripped case: voxels non-zero in any channel, and their bounding box."""

from __future__ import annotations

import numpy as np


def brain_box(brain: np.ndarray) -> tuple:
    """``((x0, x1), (y0, y1), (z0, z1))``: the bounding box of ``brain (X, Y, Z)`` bool (the whole volume
    when it is empty).

    >>> brain = np.zeros((5, 6, 7), bool); brain[1, 2, 3] = brain[3, 4, 3] = True
    >>> brain_box(brain)
    ((1, 4), (2, 5), (3, 4))
    """
    if not brain.any():
        return tuple((0, s) for s in brain.shape)
    box = []
    for axis in range(3):
        present = np.flatnonzero(np.any(brain, axis=tuple(a for a in range(3) if a != axis)))
        box.append((int(present[0]), int(present[-1]) + 1))
    return tuple(box)
