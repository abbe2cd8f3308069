"""Label schemes: a layout's label values <-> the network's class indices, and the regions.

Class index ``k`` means the same tissue whatever the dataset (``CLASS_NAMES``): 0 background,
1 necrotic / non-enhancing tumour core, 2 edema (surrounding FLAIR hyperintensity), 3 enhancing
tumour, 4 resection cavity. A ``LabelScheme`` (one per layout, in ``layouts.py``) gives the label
value its files use for each class it has; the scheme comes from the dataset's layout, never from
the values found in a file (label 4 is enhancing tumour in BraTS 2018-2021 and resection cavity
in BraTS 2024). The challenge's regions are unions of classes (``REGIONS``); a scheme has those
whose classes it has (RC only with a resection-cavity class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("background", "necrotic / non-enhancing tumour core", "edema", "enhancing tumour", "resection cavity")
REGIONS = {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3), "RC": (4,)}  # region -> class indices


@dataclass(frozen=True)
class LabelScheme:
    """``values[k]``: the label value of class ``k`` in this scheme's files; ``names[k]``: its name there."""

    name: str
    values: tuple
    names: tuple

    def __post_init__(self):
        if len(self.values) != len(self.names) or not 2 <= len(self.values) <= len(CLASS_NAMES) or self.values[0] != 0:
            raise ValueError(
                f"label scheme {self.name}: needs background 0 and one name per value, got {self.values}, {self.names}"
            )

    @property
    def num_classes(self) -> int:
        """K, the network's output classes for this scheme (5 with a resection cavity)."""
        return len(self.values)

    @property
    def regions(self) -> dict:
        """Region -> class indices, for the regions this scheme can express."""
        return {region: classes for region, classes in REGIONS.items() if max(classes) < self.num_classes}

    def region_values(self, region: str) -> tuple:
        """The label values of a region in this scheme's files (e.g. TC -> (1, 4) for BraTS 2018-2021)."""
        return tuple(sorted(self.values[k] for k in self.regions[region]))

    def describe(self) -> str:
        """``"0 background, 1 NCR/NET, 2 ED, 4 ET"``."""
        return ", ".join(f"{v} {n}" for v, n in zip(self.values, self.names))

    def to_classes(self, seg: np.ndarray) -> np.ndarray:
        """Label values -> class indices ``uint8`` (same shape). A value outside the scheme raises
        ``ValueError`` naming it (callers add the file and the likely layout)."""
        seg = np.asarray(seg)
        found = np.unique(seg)
        unknown = [v for v in found.tolist() if v not in self.values]
        if unknown:
            raise ValueError(
                f"label {_format(unknown)} is not in the {self.name} scheme ({self.describe()}); values found: {_format(found.tolist())}"
            )
        lookup = np.zeros(max(self.values) + 1, dtype=np.uint8)
        lookup[list(self.values)] = np.arange(self.num_classes, dtype=np.uint8)
        return lookup[seg.astype(np.int64)]

    def to_labels(self, classes: np.ndarray) -> np.ndarray:
        """Class indices -> this scheme's label values ``uint8``. A class the scheme lacks raises ``ValueError``."""
        classes = np.asarray(classes)
        if classes.size and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(
                f"class indices must be in [0, {self.num_classes}) for the {self.name} scheme, found [{classes.min()}, {classes.max()}]"
            )
        return np.asarray(self.values, dtype=np.uint8)[classes.astype(np.int64)]

    def to_dict(self) -> dict:
        """Plain types (stored in checkpoints and cache properties)."""
        return {"name": self.name, "values": list(self.values), "names": list(self.names)}


def _format(values: list) -> str:
    return ", ".join(str(int(v)) if float(v).is_integer() else str(v) for v in values)
