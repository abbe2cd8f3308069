"""The run folder of ``cga train``: one run per folder, locked while it trains, its log consistent with
its checkpoint after a kill, and an earlier run replaced only by a run that reached its first checkpoint.

``RunFolder`` (the main process's view of ``out``) takes the folder's lock (``folder_lock``: a second
``cga train`` into it is refused at once), then ``prepare_run_folder`` refuses a folder holding an
earlier run unless ``resume`` (continue it) or ``overwrite`` (replace it), and clears temporary
files a kill left mid-write. With ``overwrite`` the earlier run stays untouched until the end of the
new run's first epoch: ``RunFolder.replacing()`` wraps the writing of that epoch's files, moving the
old ones aside into ``PREVIOUS`` first (with a manifest of their names), putting them back if the
writing fails, and deleting them once it succeeded. A kill inside that window leaves ``PREVIOUS``
with its manifest; the next ``cga train`` into the folder puts the old run back before anything else.

``reconcile_log`` makes ``metrics.jsonl`` hold exactly one line per epoch up to the one stored in
``last.pt``: a kill between saving ``last.pt`` and appending the log line loses no line (it is
rebuilt from the record the checkpoint stores), and a line of an epoch whose checkpoint was lost is
dropped (that epoch is trained again).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..data.file_safety import atomic_write, remove_stale_temps
from ..data.folder_lock import folder_lock

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png")
LOG_FILE = "metrics.jsonl"
PREVIOUS = ".previous-run"  # the run --overwrite replaces, until the new run's first epoch is written
MANIFEST = "files.json"  # in PREVIOUS: the names of the old run's files moved there


def restore_previous(out: Path) -> None:
    """Put back the run ``--overwrite`` was replacing when its swap was cut short (idempotent: a kill
    while restoring is finished by the next call). Without a manifest nothing was moved yet, or the swap had
    finished: ``PREVIOUS`` is only deleted."""
    previous = out / PREVIOUS
    if not previous.is_dir():
        return
    manifest = previous / MANIFEST
    if manifest.is_file():
        moved = json.loads(manifest.read_text())
        for name in RUN_FILES:
            if (previous / name).exists():
                os.replace(previous / name, out / name)
            elif name not in moved:  # the new run's file: the old run had none of that name
                (out / name).unlink(missing_ok=True)
        manifest.unlink()
    shutil.rmtree(previous)


def _move_aside(out: Path) -> None:
    previous = out / PREVIOUS
    previous.mkdir()
    names = [name for name in RUN_FILES if (out / name).exists()]
    atomic_write(previous / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(names)))
    for name in names:
        os.replace(out / name, previous / name)


def _discard_previous(out: Path) -> None:
    (out / PREVIOUS / MANIFEST).unlink()  # first: without the manifest the swap counts as done
    shutil.rmtree(out / PREVIOUS)


def prepare_run_folder(out: Path, *, resume: bool, overwrite: bool) -> bool:
    """Check ``out`` (created, locked by the caller) for a new, replacing (``overwrite``) or resumed run; deletes
    nothing of an earlier run. Returns whether the new run is to replace an earlier one (``RunFolder.replacing``)."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run in --out, or replace it")
    restore_previous(out)
    remove_stale_temps(out)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume and not (out / "last.pt").is_file():
        raise ValueError(f"--resume: {out} holds no last.pt to continue from; drop --resume to start a run there")
    if existing and not (resume or overwrite):
        raise ValueError(
            f"{out} already holds a run ({', '.join(existing)}): pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    return bool(overwrite and existing)


class RunFolder:
    """``out`` held for one run: locked and checked (``prepare_run_folder``) in the main process (``main``);
    other DDP ranks hold nothing. ``release()`` frees the lock (the run ended, or failed)."""

    def __init__(self, out: Path, *, resume: bool, overwrite: bool, main: bool = True):
        self.out, self.replaces, self._held = Path(out), False, ExitStack()
        if not main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self._held.enter_context(folder_lock(self.out, "cga train"))
        try:
            self.replaces = prepare_run_folder(self.out, resume=resume, overwrite=overwrite)
            if not os.access(self.out, os.W_OK):
                raise PermissionError(f"output folder is not writable: {self.out}")
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self._held.close()

    @contextmanager
    def replacing(self):
        """Wrap the writing of an epoch's files: on the first epoch of a replacing run the old run's files go
        aside before, come back if the block fails, and are deleted once it succeeded."""
        if not self.replaces:
            yield
            return
        _move_aside(self.out)
        try:
            yield
        except BaseException:
            restore_previous(self.out)
            raise
        _discard_previous(self.out)
        self.replaces = False


def _read_records(path: Path) -> list:
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut short by a kill mid-append: the checkpoint's record replaces it
            continue
    return records


def reconcile_log(out: Path, state: dict) -> None:
    """One log line per epoch up to ``state["epoch"]`` (0-based; ``record["epoch"]`` is 1-based), none after."""
    path, last = out / LOG_FILE, state["epoch"] + 1
    records = _read_records(path) if path.is_file() else []
    kept = [r for r in records if isinstance(r, dict) and isinstance(r.get("epoch"), int) and r["epoch"] <= last]
    if not any(r["epoch"] == last for r in kept) and isinstance(state.get("record"), dict):
        kept.append(state["record"])
    if kept != records:
        atomic_write(
            path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)), what="the training log"
        )
