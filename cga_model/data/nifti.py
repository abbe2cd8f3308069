"""NIfTI reading and writing: clear errors naming an unreadable file, one conversion per read, atomic saves."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from ..quiet_logs import quiet_logger
from .errors import DataError
from .file_safety import atomic_write


def save_nifti(path, data: np.ndarray, affine: np.ndarray, header=None) -> None:
    """Write ``data`` atomically as NIfTI with ``affine`` (and ``header``, e.g. the input's)."""
    image = nib.Nifti1Image(data, affine, header=header)
    image.set_data_dtype(data.dtype)
    atomic_write(path, lambda tmp: nib.save(image, tmp))


def load_nifti(path) -> nib.Nifti1Image:
    """Open a NIfTI file (data stays on disk until read), with a clear error naming a bad file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        # nibabel's header fix-up lines ("setting 0 dims to 1") are not printed: geometry.check_image checks the
        # stored header and refuses what they fix in one line
        with quiet_logger(nib.imageglobals.logger, logging.CRITICAL):
            image = nib.load(str(path))
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise DataError(f"{path} is not a NIfTI image")
        return image
    except DataError:
        raise
    except Exception as err:  # nibabel raises many types for corrupt files
        raise DataError(f"cannot read {path} as NIfTI: {err}") from err


def read_array(image: nib.Nifti1Image, path, dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """Read the voxels of ``image`` into ``out`` (or a new array) as ``dtype``: one conversion, no extra copy.

    ``dtype=None`` keeps the values as stored (after the header's scaling): segmentations are read
    so, and checked before any cast (3.5, 65540, NaN or 2**24 + 1 never become a valid label)."""
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as err:
        raise DataError(f"cannot read the voxels of {path}: {err}") from err
    if out is None:
        return data if dtype is None else data.astype(dtype, copy=False)
    out[...] = data
    return out
