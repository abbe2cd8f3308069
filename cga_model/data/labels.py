"""Label schemes: a layout's label values <-> the network's class indices, its tissues and its regions.

Class index ``k`` of a scheme is its ``k``-th label value (``values[k]``, background first), and
``tissues[k]`` says what that class is. The GLI family (BraTS 2018-2021, 2023+, MSD Task01, and the
SSA, MEN, GoAT and MET cohorts) shares one class meaning, ``CLASS_NAMES``: 0 background,
1 necrotic / non-enhancing tumour core, 2 edema, 3 enhancing tumour, 4 resection cavity (MSD's and
BraTS 2018-2021's values are reordered onto it). The paediatric cohort (PED: 1 ET, 2 NETC, 3 cyst,
4 edema) and the radiotherapy meningioma cohort (MEN-RT: 1 GTV) have classes of their own. A
model's classes can be written in another scheme only where both give every class the same
tissue (``same_classes``). The scheme comes from the dataset's layout (and the cohort code in the
case IDs), never from the values found in a file: label 4 is enhancing tumour in BraTS 2018-2021,
resection cavity in BraTS 2024 and edema in BraTS-PED.

Regions are the unions of label values the challenge ranks (``regions``: ET, TC, WT, RC; GTV);
``label_groups`` are the single labels its evaluation also reports (GLI: NETC, SNFH; PED: NETC,
CC, ED). Both are written in label values, as the official ``brats-evaluation`` configs are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("background", "necrotic / non-enhancing tumour core", "edema", "enhancing tumour", "resection cavity")
CYST, GTV = "cyst", "gross tumour volume"
REGIONS = {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3), "RC": (4,)}  # region -> class indices of CLASS_NAMES


@dataclass(frozen=True)
class LabelScheme:
    """``values[k]``: the label value of class ``k`` in this scheme's files; ``names[k]``: its name there;
    ``tissues[k]``: what it is (default ``CLASS_NAMES[k]``). ``region_labels`` / ``group_labels``:
    ``((name, label values), ...)`` (default: the ``REGIONS`` the classes can express, no groups)."""

    name: str
    values: tuple
    names: tuple
    tissues: tuple = ()
    region_labels: tuple = ()
    group_labels: tuple = ()

    def __post_init__(self):
        if len(self.values) != len(self.names) or not 2 <= len(self.values) <= len(CLASS_NAMES) or self.values[0] != 0:
            raise ValueError(
                f"label scheme {self.name}: needs background 0 and one name per value, got {self.values}, {self.names}"
            )
        if not self.tissues:
            object.__setattr__(self, "tissues", CLASS_NAMES[: len(self.values)])
        if not self.region_labels:
            expressible = [(r, c) for r, c in REGIONS.items() if max(c) < len(self.values)]
            object.__setattr__(
                self, "region_labels", tuple((r, tuple(self.values[k] for k in c)) for r, c in expressible)
            )

    @property
    def num_classes(self) -> int:
        """K, the network's output classes for this scheme (5 with a resection cavity, 5 for PED)."""
        return len(self.values)

    def _classes(self, pairs) -> dict:
        return {name: tuple(sorted(self.values.index(v) for v in labels)) for name, labels in pairs}

    @property
    def regions(self) -> dict:
        """Region -> class indices, for the regions the challenge ranks (validation, tables)."""
        return self._classes(self.region_labels)

    @property
    def label_groups(self) -> dict:
        """Single-label group -> class indices (reported by ``cga evaluate`` beside the regions)."""
        return self._classes(self.group_labels)

    @property
    def evaluated(self) -> dict:
        """Every region and label group ``cga evaluate`` reports: name -> class indices."""
        return {**self.regions, **self.label_groups}

    def region_values(self, region: str) -> tuple:
        """The label values of a region or group in this scheme's files (e.g. TC -> (1, 4) for BraTS 2018-2021)."""
        return tuple(sorted(self.values[k] for k in self.evaluated[region]))

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
                f"label {_format(unknown)} is not in the {self.name} scheme ({self.describe()}); "
                f"values found: {_format(found.tolist())}"
            )
        lookup = np.zeros(max(self.values) + 1, dtype=np.uint8)
        lookup[list(self.values)] = np.arange(self.num_classes, dtype=np.uint8)
        return lookup[seg.astype(np.int64)]

    def to_labels(self, classes: np.ndarray) -> np.ndarray:
        """Class indices -> this scheme's label values ``uint8``. A class the scheme lacks raises ``ValueError``."""
        classes = np.asarray(classes)
        if classes.size and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(
                f"class indices must be in [0, {self.num_classes}) for the {self.name} scheme, "
                f"found [{classes.min()}, {classes.max()}]"
            )
        return np.asarray(self.values, dtype=np.uint8)[classes.astype(np.int64)]

    def reads_like(self, other: LabelScheme) -> bool:
        """Whether every label value both schemes have means the same tissue in both."""
        mine, theirs = dict(zip(self.values, self.tissues)), dict(zip(other.values, other.tissues))
        return all(mine[v] == theirs[v] for v in set(mine) & set(theirs))

    def to_dict(self) -> dict:
        """Plain types (stored in checkpoints and cache properties)."""
        return {"name": self.name, "values": list(self.values), "names": list(self.names)}


def same_classes(model_tissues, scheme: LabelScheme) -> list:
    """The classes ``k`` of a model (``model_tissues[k]``) that ``scheme`` cannot write as the same tissue."""
    return [k for k, t in enumerate(model_tissues) if k >= scheme.num_classes or scheme.tissues[k] != t]


def _format(values: list) -> str:
    return ", ".join(str(int(v)) if float(v).is_integer() else str(v) for v in values)
