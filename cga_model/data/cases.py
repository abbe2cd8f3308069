"""Brain-tumour cases: reading (any layout of ``layouts.py``), normalisation, padding.

Images become ``(4, X, Y, Z)`` float32 in the one channel order ``layouts.MODALITIES``, whatever
the files' order; labels become class indices through the layout's label scheme (``labels.py``).
Augmentation is in ``augmentation.py``; the training samples and their loader in ``loader.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .layouts import MODALITIES, CaseFiles, find_cases, segmentation_classes
from .nifti import load_nifti, read_array


@dataclass
class Case:
    """One loaded case: ``image (4, X, Y, Z)`` float32 in the order of ``layouts.MODALITIES``, ``classes
    (X, Y, Z)`` uint8 class indices or None, the NIfTI whose affine and header predictions reuse (the
    flair file, or the 4-D file of an MSD case), and the name of the case's layout."""

    case_id: str
    image: np.ndarray
    classes: np.ndarray | None
    reference: object
    layout: str


def _open_images(case: CaseFiles) -> dict:
    """Each image file of ``case`` opened once, its dimensions checked against the layout."""
    opened = {}
    for path, channel in zip(case.images, case.channels):
        if not path.is_file():
            raise DataError(f"case {case.case_id}: missing modality file {path.name} in {path.parent}")
        if path not in opened:
            opened[path] = load_nifti(path)
        image = opened[path]
        if len(image.shape) != (3 if channel is None else 4) or (
            channel is not None and image.shape[3] != len(MODALITIES)
        ):
            kind = "3-D" if channel is None else f"4-D (X, Y, Z, {len(MODALITIES)})"
            raise DataError(
                f"case {case.case_id}: {path.name} has shape {image.shape}, expected {kind} for the {case.layout} layout"
            )
    return opened


def _read_images(case: CaseFiles) -> tuple:
    """``(image (4, X, Y, Z) float32, reference NIfTI)``: each file read once, shapes and values checked."""
    opened = _open_images(case)
    reference = opened[case.images[0]]
    shape = reference.shape[:3]
    for path, image in opened.items():
        if image.shape[:3] != shape:
            raise DataError(
                f"case {case.case_id}: {path.name} has shape {image.shape}, expected 3-D {shape} like {case.images[0].name}"
            )
    stacked = np.empty((len(MODALITIES),) + tuple(shape), dtype=np.float32)
    four_d = {}
    for m, (path, channel) in enumerate(zip(case.images, case.channels)):
        if channel is None:
            read_array(opened[path], path, out=stacked[m])
        else:
            if path not in four_d:
                four_d[path] = read_array(opened[path], path)
            stacked[m] = four_d[path][..., channel]
        if not np.isfinite(stacked[m]).all():
            raise DataError(f"case {case.case_id}: {path.name} contains non-finite intensities")
    return stacked, reference


def load_case(case, *, with_labels: bool = True) -> Case:
    """Read one case of any layout (a ``CaseFiles`` of ``find_cases``, or a case folder, whose layout is detected).

    Every modality must be present, of one shape and finite; labels become class indices through
    the case's layout's scheme (a value outside it raises, naming the file and the likely layout).
    """
    if not isinstance(case, CaseFiles):
        found = find_cases(case)
        if len(found) != 1:
            raise DataError(f"{case} holds {len(found)} cases, expected one case folder")
        case = found[0]
    image, reference = _read_images(case)
    classes = None
    if with_labels and case.seg is not None:
        seg_img = load_nifti(case.seg)
        if seg_img.shape != image.shape[1:]:
            raise DataError(
                f"case {case.case_id}: {case.seg.name} has shape {seg_img.shape}, expected {image.shape[1:]}"
            )
        classes = segmentation_classes(read_array(seg_img, case.seg, dtype=None), case.seg, case.layout)
    return Case(case.case_id, image, classes, reference, case.layout)


def normalize(image: np.ndarray) -> np.ndarray:
    """In place: z-score each modality inside the brain (voxels non-zero in any modality); outside stays 0.

    Mean and standard deviation are computed in float64: a modality scaled to ~1e30 overflows float32's."""
    brain = np.any(image != 0, axis=0)
    if not brain.any():
        return image
    for channel in image:
        values = channel[brain]
        mean, std = values.mean(dtype=np.float64), values.std(dtype=np.float64)
        channel[brain] = (values - mean) / (std + 1e-8)
    return image


def pad_to_multiple(array: np.ndarray, multiple: int, min_size=None) -> np.ndarray:
    """Zero-pad the last three dims at their end to a multiple of ``multiple`` (and at least ``min_size``)."""
    spatial = array.shape[-3:]
    target = [max(-(-s // multiple) * multiple, m) for s, m in zip(spatial, min_size or (0, 0, 0))]
    pads = [(0, 0)] * (array.ndim - 3) + [(0, t - s) for s, t in zip(spatial, target)]
    return array if all(p == (0, 0) for p in pads) else np.pad(array, pads)
