"""The one place the nnU-Net converter reads a dataset folder: ``read_cases(data, layout)``.

Returns a ``CaseSource``: the layout's name, the modality order of the image tensors, the number
of classes of its label scheme and an iterator of ``cga_model.data.dataset.Case`` (``image (4, X,
Y, Z)`` float32, ``classes (X, Y, Z)`` class indices or None, ``reference`` NIfTI for the affine).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Optional

from ..data.dataset import Case, find_cases, load_case
from ..data.labels import BRATS_LABELS
from ..data.layout import MODALITIES

LAYOUTS = ("brats2021",)


class CaseSource(NamedTuple):
    layout: str
    modalities: tuple
    num_classes: int
    cases: Iterator[Case]


def read_cases(data, layout: Optional[str] = None) -> CaseSource:
    """The cases of the folder ``data`` (read lazily, one at a time); ``layout`` None detects it."""
    if layout not in (None, *LAYOUTS):
        raise ValueError(f"--layout must be one of {LAYOUTS}, got {layout!r}")
    folders = find_cases(data)
    return CaseSource("brats2021", MODALITIES, len(BRATS_LABELS), (load_case(f) for f in folders))
