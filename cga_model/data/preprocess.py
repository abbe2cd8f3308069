"""``cga preprocess``: fill a cache folder (``cache.py``) from a raw dataset, in parallel over cases.

Re-running on the same folder finishes an interrupted run (finished cases are skipped, leftover
partial cases removed). A folder that is not a cache, or a cache of another format, other
settings or another dataset, is refused; ``rebuild=True`` clears a cache and starts over. The folder
is locked while it is filled (``folder_lock``): a second ``cga preprocess`` into it is refused at once.
Worker processes ignore Ctrl-C; the parent stops them and removes the partial cases.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm import tqdm

from .cache import (
    INDEX_FILE,
    PARTIAL_PREFIX,
    PROPERTIES_FILE,
    CacheError,
    is_cache,
    read_index,
    stale_sources,
    write_case,
    write_index,
)
from .cases import check_headers
from .folder_lock import LOCK_FILE, folder_lock
from .layouts import find_cases
from .workers import interrupts_held_back


def _remove_partials(out: Path) -> None:
    for path in out.glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def _clear_cache(out: Path) -> None:
    """Remove what a cache holds (index, cases, partial cases); other files are the user's and stay."""
    _remove_partials(out)
    for path in out.iterdir():
        if path.is_dir() and (path / PROPERTIES_FILE).is_file():
            shutil.rmtree(path)
    (out / INDEX_FILE).unlink(missing_ok=True)


def _check_same_dataset(out: Path, data: Path, case_ids: list[str], layout: str) -> None:
    index = read_index(out)
    if (index["source"], index["cases"], index["layout"]) != (str(data.resolve()), case_ids, layout):
        raise CacheError(
            f"cache {out} was made from {index['source']} ({len(index['cases'])} {index['layout']} cases), not from "
            f"{data.resolve()} ({len(case_ids)} {layout} cases): choose another --out, or pass --rebuild to replace it"
        )


def prepare_cache_folder(out, data, case_ids: list[str], *, layout: str, rebuild: bool = False) -> None:
    """Make ``out`` a cache of ``data``'s ``case_ids`` in ``layout``: new, empty, or a cache of the same dataset,
    layout, format and settings (resumed); ``rebuild`` clears a cache first. A non-empty folder that is not a
    cache is refused."""
    out, data = Path(out), Path(data)
    if out.exists() and not out.is_dir():
        raise CacheError(f"--out {out} is a file, not a folder")
    if out.is_dir() and is_cache(out):
        if rebuild:
            _clear_cache(out)
        else:
            _check_same_dataset(out, data, case_ids, layout)
    elif out.is_dir() and any(path.name != LOCK_FILE for path in out.iterdir()):
        raise CacheError(
            f"refusing to write into {out}: it is not empty and not a cga cache (no {INDEX_FILE}); "
            "choose a new or empty folder"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        _remove_partials(out)
        write_index(out, data, case_ids, layout)
    except OSError as err:
        raise CacheError(f"cannot create the cache folder {out}: {err}") from err


def _unfinished(out: Path, folders: list[Path]) -> list[Path]:
    """The case folders not yet in the cache; a cached case whose source changed is an error."""
    todo = []
    for folder in folders:
        properties = out / folder.name / PROPERTIES_FILE
        if not properties.is_file():
            todo.append(folder)
            continue
        changed = stale_sources(json.loads(properties.read_text()))
        if changed:
            raise CacheError(
                f"case {folder.name} changed since it was cached in {out}: {changed[0]}; "
                "pass --rebuild to rebuild the cache"
            )
    return todo


def _ignore_interrupts() -> None:
    """In a worker process: Ctrl-C is the parent's to handle (it cancels the queued cases and cleans up)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_parallel(jobs: list, workers: int, bar) -> None:
    """``write_case`` of every job on ``workers`` processes; the first error cancels the queued jobs, and a
    worker that dies (killed, out of memory) is an error, not a hang."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(), initializer=_ignore_interrupts) as pool:
        try:
            with interrupts_held_back():  # a Ctrl-C during the workers' fork is raised here, not dropped
                futures = [pool.submit(write_case, *job) for job in jobs]
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BrokenProcessPool as err:
            raise CacheError(
                f"a cga preprocess worker process died ({err}); finished cases are intact, run it again"
            ) from err
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _run(jobs: list, workers: int, progress: bool) -> None:
    with tqdm(total=len(jobs), desc="preprocess", unit="case", disable=not progress, leave=False) as bar:
        if workers > 1:
            _run_parallel(jobs, workers, bar)
            return
        for job in jobs:
            write_case(*job)
            bar.update()


def preprocess(data, out, workers: int = 1, rebuild: bool = False, progress: bool = True, *, layout=None) -> dict:
    """Cache every case of the raw dataset ``data`` (any layout: detected, or ``layout``) into ``out`` with
    ``workers`` processes.

    Returns ``{"cases": n, "written": n_new, "skipped": n_already_cached}``. Every case's ID, files, headers
    and geometry are checked before the first case is written (``find_cases``, ``cases.check_headers``); on a
    later error (bad voxel values, a full disk) the workers stop, partial cases are removed and finished ones stay.
    """
    data, out = Path(data), Path(out)
    folders = find_cases(data, layout=layout)
    for folder in folders:  # every case's files, headers and geometry, before the first case is written
        check_headers(folder)
    if out.exists() and not out.is_dir():
        raise CacheError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "cga preprocess"):
        prepare_cache_folder(out, data, [f.name for f in folders], layout=folders[0].layout, rebuild=rebuild)
        todo = _unfinished(out, folders)
        try:
            _run([(folder, out) for folder in todo], min(workers, max(len(todo), 1)), progress)
        finally:
            _remove_partials(out)
    return {"cases": len(folders), "written": len(todo), "skipped": len(folders) - len(todo)}
