"""The one geometry check of every stage: affines and voxel sizes that can be used, and images on one voxel grid.

``check_geometry`` runs wherever a case's files are opened (``cases.py``: preprocess, train,
predict); ``check_same_grid`` also where ``cga evaluate`` puts a prediction on its ground truth.
Every refusal is a ``DataError`` naming the file, the value and what to do.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from .errors import DataError

AFFINE_TOLERANCE_MM = 1e-3  # two affines of one voxel grid may differ by this much per entry (float rounding)
SINGULAR_TOLERANCE = 1e-6  # |det| / product of the column lengths below this: the voxel axes collapse


def _matrix(affine) -> list:
    return np.round(np.asarray(affine, dtype=np.float64), 4).tolist()


def check_affine(affine, path) -> None:
    """Refuse a ``(4, 4)`` voxel-to-world ``affine`` of ``path`` that holds NaN/inf or whose voxel axes collapse."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise DataError(
            f"{path}: its affine (voxel-to-world matrix) holds NaN or inf: {_matrix(affine)}; fix the header's "
            "sform/qform, e.g. copy them from another sequence of the case"
        )
    axes = affine[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    if lengths.min() == 0 or abs(np.linalg.det(axes)) < SINGULAR_TOLERANCE * lengths.prod():
        raise DataError(
            f"{path}: its affine is singular (a voxel axis of length 0, or two along one direction): "
            f"{_matrix(affine)}; fix the header's sform/qform, e.g. copy them from another sequence of the case"
        )


def check_voxel_sizes(zooms, path) -> None:
    """Refuse voxel sizes ``zooms`` (the first three spatial, mm) of ``path`` that are zero, negative or not finite."""
    spatial = np.asarray(zooms, dtype=np.float64)[:3]
    if spatial.size < 3 or not np.isfinite(spatial).all() or (spatial <= 0).any():
        raise DataError(
            f"{path}: voxel size {spatial.tolist()} mm in its header (pixdim) is zero, negative or not finite; "
            "distances in mm would be guessed: set the true voxel sizes"
        )


def stored_voxel_sizes(image) -> tuple:
    """The spatial voxel sizes of the NIfTI ``image`` as its file stores them (nibabel reads a 0 as 1 mm);
    the header's for an image not read from a file."""
    header_class = type(image.header)
    if image.get_filename() is None:
        return tuple(float(z) for z in image.header.get_zooms()[:3])
    with nib.openers.ImageOpener(image.get_filename()) as stream:
        raw = header_class.from_fileobj(stream, check=False)
    return tuple(float(z) for z in raw["pixdim"][1:4])


def check_image(image, path) -> None:
    """One opened NIfTI ``image`` of ``path``: its affine and its stored voxel sizes."""
    check_affine(image.affine, path)
    check_voxel_sizes(stored_voxel_sizes(image), path)


def check_same_grid(image, path, reference, reference_path, *, what: tuple, advice: str) -> None:
    """``image`` (of ``path``) must lie on the voxel grid of ``reference``: the same 3-D shape and affine
    (within ``AFFINE_TOLERANCE_MM`` per entry). ``what``: the names of the two, e.g. ``("prediction",
    "ground truth")``; ``advice`` ends the message."""
    if tuple(image.shape[:3]) != tuple(reference.shape[:3]):
        raise DataError(
            f"{path}: {what[0]} shape {tuple(image.shape)} differs from {what[1]} shape {tuple(reference.shape)} "
            f"({reference_path}); {advice}"
        )
    gap = float(np.abs(np.asarray(image.affine) - np.asarray(reference.affine)).max())
    if not gap <= AFFINE_TOLERANCE_MM:
        raise DataError(
            f"{path}: the {what[0]}'s affine differs from the {what[1]}'s ({reference_path}) by up to {gap:.3g} "
            f"(more than {AFFINE_TOLERANCE_MM}; flipped, shifted or rescaled?): {_matrix(image.affine)} vs "
            f"{_matrix(reference.affine)}; {advice}"
        )


def check_geometry(images: dict, seg=None) -> None:
    """The geometry of one case: ``images`` ``{path: opened NIfTI}`` (its sequences, the first the reference)
    and ``seg`` ``(path, opened NIfTI)`` or None. Each affine and voxel size usable, every sequence and
    the segmentation on the reference's voxel grid. Raises ``DataError``."""
    (first, reference), *others = images.items()
    check_image(reference, first)
    for path, image in others:
        check_image(image, path)
        check_same_grid(
            image, path, reference, first, what=("sequence", "first sequence"),
            advice=f"a case's sequences must share one voxel grid: register and resample this one onto {first.name}'s",
        )  # fmt: skip
    if seg is not None:
        path, image = seg
        check_image(image, path)
        check_same_grid(
            image, path, reference, first, what=("segmentation", "first sequence"),
            advice=f"a segmentation must lie on its images' voxel grid: resample it onto {first.name}'s",
        )  # fmt: skip
