"""BraTS label conventions: labels {0, 1, 2, 4} (2019) or {0, 1, 2, 3} (2021+) <-> class indices 0..3.

Class index ``k`` <-> ``BRATS_LABELS[k]``: 0 background, 1 necrotic / non-enhancing core,
2 oedema, 3 enhancing tumour (label 4, written as 3 in BraTS 2021+ files). Both functions
accept numpy arrays (returning ``uint8`` arrays) and torch tensors (returning ``uint8`` tensors
on the same device).
"""

from __future__ import annotations

import numpy as np
import torch

BRATS_LABELS = (0, 1, 2, 4)  # network class index k <-> BRATS_LABELS[k]
REGIONS = {"ET": (4,), "TC": (1, 4), "WT": (1, 2, 4)}  # the challenge's regions, in BraTS labels

_TO_CLASS = (0, 1, 2, 3, 3)  # label value -> class index, for labels 0..4


def labels_to_classes(seg):
    """BraTS labels (0, 1, 2, 4, or 3 for 4) -> class indices 0..3 (uint8).

    Raises ``ValueError`` for any other value, and for a volume holding both 3 and 4 (no BraTS
    release uses both, so such a file is not a BraTS segmentation).
    """
    is_torch = isinstance(seg, torch.Tensor)
    arr = seg if is_torch else np.asarray(seg)
    if (arr.numel() if is_torch else arr.size) == 0:
        return arr.to(torch.uint8) if is_torch else arr.astype(np.uint8)
    lo, hi = arr.min().item(), arr.max().item()
    floating = arr.is_floating_point() if is_torch else arr.dtype.kind == "f"
    if lo < 0 or hi > 4 or (floating and bool((arr != arr.round()).any())):
        values = (torch.unique(arr) if is_torch else np.unique(arr)).tolist()
        bad = [v for v in values if v not in (0, 1, 2, 3, 4)]
        raise ValueError(f"segmentation labels must be in {{0, 1, 2, 3, 4}}, found {bad[:5]}")
    if hi == 4 and bool((arr == 3).any()):
        raise ValueError("segmentation holds both labels 3 and 4: expected {0, 1, 2, 4} (BraTS 2019) or {0, 1, 2, 3} (2021+)")
    if is_torch:
        return torch.tensor(_TO_CLASS, dtype=torch.uint8, device=arr.device)[arr.long()]
    return np.asarray(_TO_CLASS, dtype=np.uint8)[arr.astype(np.int64)]


def classes_to_labels(classes):
    """Class indices 0..3 -> BraTS labels {0, 1, 2, 4} (uint8). Other values raise ``ValueError``."""
    is_torch = isinstance(classes, torch.Tensor)
    arr = classes if is_torch else np.asarray(classes)
    if arr.numel() if is_torch else arr.size:
        lo, hi = arr.min().item(), arr.max().item()
        if lo < 0 or hi >= len(BRATS_LABELS):
            raise ValueError(f"class indices must be in [0, {len(BRATS_LABELS)}), found values in [{lo}, {hi}]")
    if is_torch:
        return torch.tensor(BRATS_LABELS, dtype=torch.uint8, device=arr.device)[arr.long()]
    return np.asarray(BRATS_LABELS, dtype=np.uint8)[arr.astype(np.int64)]
