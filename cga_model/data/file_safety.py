"""File safety: output paths that cannot escape their folder, and atomic writes that honour the umask."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import DataError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
