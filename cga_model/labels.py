"""BraTS label conventions: labels {0, 1, 2, 4} (2019) or {0, 1, 2, 3} (2021+) <-> class indices 0..3."""

from __future__ import annotations

import numpy as np

BRATS_LABELS = (0, 1, 2, 4)  # network class index k <-> BRATS_LABELS[k]
REGIONS = {"ET": (4,), "TC": (1, 4), "WT": (1, 2, 4)}  # the challenge's regions, in BraTS labels

_TO_CLASS = np.full(256, 255, dtype=np.uint8)
_TO_CLASS[[0, 1, 2, 3, 4]] = [0, 1, 2, 3, 3]


def labels_to_classes(seg: np.ndarray) -> np.ndarray:
    """BraTS labels (0, 1, 2, 4 or 3 for 4) -> class indices 0..3 (uint8). Other values raise ValueError."""
    seg = np.asarray(seg)
    bad = (seg < 0) | (seg > 4)
    if bad.any():
        raise ValueError(f"segmentation labels must be in {{0, 1, 2, 3, 4}}, found {np.unique(seg[bad])[:5].tolist()}")
    return _TO_CLASS[seg.astype(np.int64)]


def classes_to_labels(classes: np.ndarray) -> np.ndarray:
    """Class indices 0..3 -> BraTS labels {0, 1, 2, 4} (uint8)."""
    return np.asarray(BRATS_LABELS, dtype=np.uint8)[np.asarray(classes, dtype=np.int64)]
