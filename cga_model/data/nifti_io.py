"""NIfTI input/output: atomic writes, safe output paths, clear errors for unreadable files."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DataError(ValueError):
    """A data file or folder that cannot be used as asked (the message names it)."""


def safe_case_path(out_dir, case_id: str, suffix: str) -> Path:
    """``out_dir / (case_id + suffix)``, refusing IDs that could escape ``out_dir`` (``..``, ``/``, ...)."""
    if not _SAFE_ID.match(case_id) or ".." in case_id:
        raise DataError(f"case ID {case_id!r} is not a safe file name (letters, digits, '.', '_', '-' only, no '..')")
    out = Path(out_dir).resolve()
    path = (out / f"{case_id}{suffix}").resolve()
    if path.parent != out:
        raise DataError(f"case ID {case_id!r} would write outside {out}")
    return path


TEMP_MARK = ".tmp"  # atomic_write's temporary files: .<name>.<random>.tmp<suffixes> beside the target


def current_umask() -> int:
    """The process's file-creation mask: from /proc on Linux (no change to it), else by setting it and putting it back."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write(path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash leaves either the old file or the new one, never a partial file (a SIGKILL may leave
    the temporary file: ``remove_stale_temps`` clears them). The file gets the mode a plain
    ``open(path, "w")`` would give (0666 less the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_MARK + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temps(folder) -> list:
    """Delete the temporary files ``atomic_write`` left in ``folder`` when killed mid-write; returns their paths."""
    stale = [p for p in Path(folder).glob(f".*{TEMP_MARK}*") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


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
