"""The run folder of ``cga train``: one run per folder, its log consistent with its checkpoint after a kill.

``prepare_run_folder`` refuses a folder holding an earlier run unless ``resume`` (continue it) or
``overwrite`` (delete its files first), and clears temporary files a kill left mid-write.
``reconcile_log`` makes ``metrics.jsonl`` hold exactly one line per epoch up to the one stored in
``last.pt``: a kill between saving ``last.pt`` and appending the log line loses no line (it is
rebuilt from the record the checkpoint stores), and a line of an epoch whose checkpoint was lost is
dropped (that epoch is trained again).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.file_safety import atomic_write, remove_stale_temps

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png")
LOG_FILE = "metrics.jsonl"


def prepare_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Create ``out`` (or check the run it holds) for a new (``overwrite``: replacing) or resumed run."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run in --out, or replace it")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume and not (out / "last.pt").is_file():
        raise ValueError(f"--resume: {out} holds no last.pt to continue from; drop --resume to start a run there")
    if existing and not (resume or overwrite):
        raise ValueError(
            f"{out} already holds a run ({', '.join(existing)}): pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    if overwrite:
        for name in existing:
            (out / name).unlink()


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
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))
