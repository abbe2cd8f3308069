"""File safety: the one output rule of every command that writes (``check_output``), output paths that cannot
escape their folder, atomic writes that honour the umask and keep symlinks, and one way a failed write is
reported (``WriteFailed``: the file, the cause, the space left and what to do)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import DataError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


ID_RULE = "ASCII letters and digits, then also '.', '_', '-' (no '..', no other characters)"


def is_safe_id(case_id: str) -> bool:
    """Whether ``case_id`` may name output files: it matches ``ID_RULE`` (so it cannot leave a folder)."""
    return bool(_SAFE_ID.match(case_id)) and ".." not in case_id


def check_case_ids(case_ids, root) -> None:
    """Refuse the cases of ``root`` at once when any ID breaks ``ID_RULE``, naming them all (up to five), so a
    command stops before it writes the first case (predict, preprocess, train, nnunet-convert, evaluate)."""
    bad = [case_id for case_id in case_ids if not is_safe_id(case_id)]
    if bad:
        shown = ", ".join(repr(case_id) for case_id in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(
            f"{root}: case ID {shown} is not a safe file name: {ID_RULE}; rename the case's folder and files"
        )


def safe_case_path(out_dir, case_id: str, suffix: str) -> Path:
    """``out_dir / (case_id + suffix)`` (``out_dir`` resolved), refusing IDs that could escape it (``..``, ``/``)."""
    if not is_safe_id(case_id):
        raise DataError(f"case ID {case_id!r} is not a safe file name: {ID_RULE}; rename the case's files")
    out = Path(out_dir).resolve()
    path = out / f"{case_id}{suffix}"  # not resolved: a symlink there is written through (check_output vets it)
    if path.parent != out:
        raise DataError(f"case ID {case_id!r} would write outside {out}")
    return path


TEMP_MARK = ".tmp"  # atomic_write's temporary files: .<name>.<random>.tmp<suffixes> beside the target


def current_umask() -> int:
    """The process's file-creation mask: from /proc on Linux (no change to it), else set and put back."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


OUT_OF_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a full disk, a file-size limit, a quota


class WriteFailed(OSError):
    """A write that failed; the message names the file, the cause and what to do (``write_failure``)."""


def write_failure(path, err: BaseException) -> str:
    """Why writing ``path`` failed and what to do, as far as can be told: for an ``OSError`` of ``OUT_OF_SPACE``
    (or an error without an errno, such as torch's "[enforce fail ...]" of a cut-short save or numpy's "62720
    requested and 4032 written" of a short write) the space left on the file system of ``path``; ``err``'s own
    message (which often names neither) is kept, shortened."""
    cause = " ".join(str(err).split())[:200]
    out_of_space = getattr(err, "errno", None) is None or err.errno in OUT_OF_SPACE
    try:
        free = shutil.disk_usage(Path(os.path.realpath(path)).parent).free
    except OSError:
        out_of_space = False
    if not out_of_space:
        return f"{cause}; check that its folder exists and is writable"
    return (
        f"the write stopped part-way with {free / 2**20:.1f} MiB free on its file system (a full disk, a quota or "
        f"a file-size limit) ({cause}); free some space or choose another --out"
    )


def write_failed(path, err: BaseException, what: str = "the file") -> WriteFailed:
    """The ``WriteFailed`` to raise for ``err`` while writing ``path`` (``what``: e.g. "the checkpoint");
    its ``errno`` is ``err``'s."""
    failed = WriteFailed(f"cannot write {what} {path}: {write_failure(path, err)}")
    failed.errno = getattr(err, "errno", None)
    return failed


def atomic_write(path, write, *, what: str = "the file", failures=(OSError,)) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash leaves either the old file or the new one, never a partial file (a SIGKILL may leave
    the temporary file: ``remove_stale_temps`` clears them). The file gets the mode a plain
    ``open(path, "w")`` would give (0666 less the umask), not ``mkstemp``'s 0600. When ``path`` is a
    symlink, its target is written and the link kept. An error of ``failures`` (a full disk, a missing or
    read-only folder) is raised as ``WriteFailed`` naming ``what`` and ``path`` (``write_failed``); the file
    there, if any, stays as it was and no temporary file is left.
    """
    real = Path(os.path.realpath(path))  # a symlink keeps pointing at the file written
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=TEMP_MARK + "".join(real.suffixes), dir=real.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, real)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, failures) and not isinstance(err, WriteFailed):
            raise write_failed(path, err, what) from err
        raise


def atomic_append(path, text: str, *, what: str = "the file") -> None:
    """Append ``text`` to the file ``path`` (created if missing) atomically: the file is rewritten through
    ``atomic_write``, so a failed append (``WriteFailed``) leaves it whole, never with a line cut short."""
    real = Path(os.path.realpath(path))
    old = real.read_text() if real.is_file() else ""
    atomic_write(path, lambda tmp: Path(tmp).write_text(old + text), what=what)


def remove_stale_temps(folder) -> list:
    """Delete the temporary files ``atomic_write`` left in ``folder`` when killed mid-write; returns their paths."""
    stale = [p for p in Path(folder).glob(f".*{TEMP_MARK}*") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


MAX_NAME_BYTES = 255  # the longest file or folder name ext4, XFS, APFS and NTFS allow


def check_name_lengths(path, flag: str = "--out") -> None:
    """Refuse a ``path`` with a component over ``MAX_NAME_BYTES`` bytes (UTF-8), which no file system can create."""
    for part in Path(path).parts:
        size = len(os.fsencode(part))
        if size > MAX_NAME_BYTES:
            raise DataError(
                f"{flag} {str(path)[:60]}...: the name {part[:30]}... is {size} bytes, over the {MAX_NAME_BYTES} "
                "bytes a file system allows per name; choose a shorter one"
            )


def _within(path: Path, folder: Path) -> bool:
    """Whether the real path ``path`` is ``folder`` or lies under it (both already resolved)."""
    return path == folder or folder in path.parents


def _check_inputs(out, real_out: Path, inputs, will_write, replaces: bool, flag: str) -> None:
    """Refuse an output that would write into (or, with ``replaces``, delete) an input, even with ``--overwrite``."""
    for source in inputs:
        real_in = Path(os.path.realpath(source))
        if _within(real_out, real_in):
            raise DataError(
                f"{flag} {out} is inside the input {source}: writing there would replace input files, so it is "
                "refused even with --overwrite; choose a folder outside the input"
            )
        if replaces and _within(real_in, real_out):
            raise DataError(
                f"{flag} {out} holds the input {source}: replacing it would delete the input, so it is refused even "
                "with --overwrite; choose another folder"
            )
        hit = next((p for p in will_write if _within(Path(os.path.realpath(p)), real_in)), None)
        if hit is not None:
            raise DataError(
                f"{flag} {out}: {hit} leads into the input {source} (a symlink?); writing it would replace an input "
                "file, so it is refused even with --overwrite; choose another folder"
            )


def check_output(out, *, inputs=(), overwrite: bool = False, will_write=(), replaces: bool = False, flag="--out"):
    """The output rule of every command that writes, checked before anything is written (raises ``DataError``).

    ``out``: the output folder or file; ``inputs``: the files and folders the command reads;
    ``will_write``: every path it would write (checked as given, symlinks followed); ``replaces``:
    ``out`` is replaced as a whole. Refused always: a name over ``MAX_NAME_BYTES`` bytes; ``out``
    inside (or equal to) an input, or a path of ``will_write`` leading into one (realpaths);
    with ``replaces``, an input inside ``out``. Refused unless ``overwrite``: a path of ``will_write``
    that exists (the first one is named; a symlink to nothing replaces nothing).
    """
    will_write = [Path(p) for p in will_write]
    for path in [Path(out), *will_write]:
        check_name_lengths(path, flag)
    _check_inputs(out, Path(os.path.realpath(out)), inputs, will_write, replaces, flag)
    existing = [p for p in will_write if os.path.exists(p)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more it would replace)" if len(existing) > 1 else ""
        raise DataError(
            f"{flag} {out}: {existing[0]} exists{more}; pass --overwrite to replace it, or choose another {flag}"
        )


def check_holds_only(out, will_write, *, reason: str, flag: str = "--out") -> None:
    """Refuse a folder ``out`` holding a file that is not in ``will_write`` (symlinks followed), even with
    ``--overwrite``: ``reason`` says why that file must not stay beside the output."""
    if not os.path.isdir(out):
        return
    expected = {Path(os.path.realpath(p)) for p in will_write}
    other = next(
        (p for p in Path(out).rglob("*") if not p.is_dir() and Path(os.path.realpath(p)) not in expected), None
    )
    if other is not None:
        raise DataError(f"{flag} {out} holds {other}; {reason}")
