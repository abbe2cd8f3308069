"""Brain-tumour cases: reading (any layout of ``layouts.py``), normalisation, padding.

Images become ``(C, X, Y, Z)`` float32: the case's layout's sequences (``Layout.modalities``, in the
order of ``layouts.MODALITIES``), whatever the files' order; labels become class indices through
the layout's label scheme (``labels.py``). A missing sequence file is an error or, with
``allow_missing``, a channel of zeros (``Case.missing`` names it; at least one sequence must be there).
Augmentation is in ``augmentation.py``; the training samples and their loader in ``loader.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .geometry import check_geometry
from .layouts import LAYOUTS, CaseFiles, find_cases, segmentation_classes
from .nifti import load_nifti, read_array


@dataclass
class Case:
    """One loaded case: ``image (C, X, Y, Z)`` float32, the sequences ``modalities`` of its layout, ``classes
    (X, Y, Z)`` uint8 class indices or None, the NIfTI whose affine and header predictions reuse (the
    first sequence file there: flair when present, or the 4-D file of an MSD case), the name of the
    case's layout, and the sequences ``missing`` from it (read with ``allow_missing``: their channels are 0)."""

    case_id: str
    image: np.ndarray
    classes: np.ndarray | None
    reference: object
    layout: str
    missing: tuple = ()

    @property
    def modalities(self) -> tuple:
        """The sequence of each image channel (``Layout.modalities``)."""
        return LAYOUTS[self.layout].modalities

    @property
    def display_image(self) -> np.ndarray:
        """``(X, Y, Z)``: the channel overlays show (FLAIR, or the first sequence there is)."""
        present = [m for m in self.modalities if m not in self.missing]
        return self.image[self.modalities.index("flair" if "flair" in present else present[0])]


def _not_a_file(path: Path, case: CaseFiles, modality: str) -> str:
    """Why ``path``, the ``modality`` sequence of ``case``, cannot be read: a folder, a broken symlink, or nothing."""
    expected = f"the {modality} sequence of case {case.case_id} must be a NIfTI file there"
    if path.is_dir():
        return f"{path} is a folder, not a file: {expected}; move the folder away and put the file there"
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as err:
            target = os.readlink(path)
            return f"{path} is a symlink that leads nowhere ({err.strerror}: {target}): {expected}; fix the link"
        return f"{path} is a symlink to something that is not a file: {expected}; fix the link"
    return (
        f"{path}: missing modality file {path.name}: case {case.case_id} has no {modality} sequence, which "
        f"the {case.layout} layout (and a network trained on it) needs; add it, or move the case out"
    )


def _absent(path: Path) -> bool:
    """Whether nothing at all is at ``path`` (a folder or a broken symlink there is no missing sequence)."""
    return not path.exists() and not path.is_symlink()


def _open_images(case: CaseFiles, allow_missing: bool = False) -> tuple:
    """``(opened, missing)``: each image file of ``case`` opened once (headers only, in the layout's order), its
    dimensions checked against the layout; ``missing``: the sequences whose file is absent (with ``allow_missing``;
    without, refused naming the file). A case without any of its sequence files is always refused."""
    opened, missing = {}, []
    for path, channel, modality in zip(case.images, case.channels, case.modalities):
        if allow_missing and _absent(path):
            missing.append(modality)
            continue
        if not path.is_file():
            raise DataError(_not_a_file(path, case, modality))
        if path not in opened:
            opened[path] = load_nifti(path)
        image = opened[path]
        if len(image.shape) != (3 if channel is None else 4) or (channel is not None and image.shape[3] != 4):
            kind = "3-D" if channel is None else "4-D (X, Y, Z, 4)"
            raise DataError(
                f"{path}: shape {image.shape}, expected {kind} for the {case.layout} layout; "
                "check the file is a sequence of this case"
            )
    if not opened:
        raise DataError(
            f"{case.images[0]}: case {case.case_id} has none of its sequences ({', '.join(case.modalities)}) "
            "there; a case needs at least one, even with --allow-missing: add them, or move the case out"
        )
    return opened, tuple(missing)


def check_headers(case: CaseFiles, *, allow_missing: bool = False) -> tuple:
    """What a header read can check of one case, before any training: every sequence present (or, with
    ``allow_missing``, at least one), NIfTI, of one 3-D shape, numeric, on one voxel grid; the segmentation
    (when present) of that shape and grid. Returns the missing sequences; raises ``DataError``."""
    opened, missing = _open_images(case, allow_missing)
    first = next(iter(opened))
    shape = opened[first].shape[:3]
    files = list(opened.items()) + ([(case.seg, load_nifti(case.seg))] if case.seg is not None else [])
    for path, image in files:
        if image.shape[:3] != shape:
            raise DataError(f"{path} has shape {image.shape}, expected {shape} like {first.name}; resample it")
        if not np.issubdtype(image.get_data_dtype(), np.number):
            raise DataError(f"{path}: voxel type {image.get_data_dtype()} is not numeric; convert it")
    check_geometry(opened, files[-1] if case.seg is not None else None)
    return missing


def _read_images(case: CaseFiles, allow_missing: bool) -> tuple:
    """``(image (C, X, Y, Z) float32, reference path, reference NIfTI, missing sequences)``: each file read once,
    shapes and values checked; the channels of missing sequences (``allow_missing``) are 0."""
    opened, missing = _open_images(case, allow_missing)
    first, reference = next(iter(opened.items()))
    shape = reference.shape[:3]
    for path, image in opened.items():
        if image.shape[:3] != shape:
            raise DataError(
                f"{path} has shape {image.shape}, expected 3-D {shape} like {first.name}; "
                "resample it to its case's grid"
            )
    check_geometry(opened)
    stacked = np.zeros((len(case.images),) + tuple(shape), dtype=np.float32)
    four_d = {}
    for m, (path, channel) in enumerate(zip(case.images, case.channels)):
        if path not in opened:
            continue
        if channel is None:
            read_array(opened[path], path, out=stacked[m])
        else:
            if path not in four_d:
                four_d[path] = read_array(opened[path], path)
            stacked[m] = four_d[path][..., channel]
        if not np.isfinite(stacked[m]).all():
            raise DataError(
                f"{path}: contains non-finite intensities (NaN or inf); replace them (e.g. by 0) "
                "or move the case out of the folder"
            )
    return stacked, first, reference, missing


def load_case(case, *, with_labels: bool = True, allow_missing: bool = False) -> Case:
    """Read one case of any layout (a ``CaseFiles`` of ``find_cases``, or a case folder, whose layout is detected).

    Every modality must be present (``allow_missing``: at least one; absent ones become channels of 0,
    named by ``Case.missing``), of one shape and voxel grid and finite; labels become class indices through
    the case's layout's scheme (a value outside it raises, naming the file and the likely layout).
    """
    if not isinstance(case, CaseFiles):
        found = find_cases(case)
        if len(found) != 1:
            raise DataError(f"{case} holds {len(found)} cases, expected one case folder")
        case = found[0]
    image, first, reference, missing = _read_images(case, allow_missing)
    classes = None
    if with_labels and case.seg is not None:
        seg_img = load_nifti(case.seg)
        if seg_img.shape != image.shape[1:]:
            raise DataError(f"{case.seg}: shape {seg_img.shape}, expected {image.shape[1:]} like the case's images")
        check_geometry({first: reference}, (case.seg, seg_img))
        classes = segmentation_classes(read_array(seg_img, case.seg, dtype=None), case.seg, case.layout)
    return Case(case.case_id, image, classes, reference, case.layout, missing)


def normalize(image: np.ndarray) -> np.ndarray:
    """In place: z-score each modality inside the brain (voxels non-zero in any modality); outside stays 0.

    Mean and standard deviation are computed in float64: a modality scaled to ~1e30 overflows float32's.
    A channel of zeros (a missing sequence) stays 0 and takes no part in the brain."""
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
