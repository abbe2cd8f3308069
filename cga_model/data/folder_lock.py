"""One writer per folder: ``folder_lock(folder, command)`` holds an exclusive ``fcntl`` lock on
``folder/.cga.lock`` while a command writes there (``cga train`` its run folder, ``cga preprocess``
its cache); a second command on the same folder is refused at once (``FolderBusy``), naming it.

The lock file exists only while held: it is removed before the lock is released, and a process that
locked a file already removed retries on the new one, so two holders can never coexist. The kernel
releases the lock of a killed process; the file it leaves behind is taken over by the next command, and a
lock still held by a killed command's forked loader workers (its recorded pid gone) is replaced.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .file_safety import write_failed

LOCK_FILE = ".cga.lock"


class FolderBusy(RuntimeError):
    """Another process holds the lock of the folder."""


def _holder_is_dead(path: Path) -> bool:
    """Whether the process named in the lock file (``<command> pid <pid>``) is gone: a killed command whose
    forked children (loader workers) still hold the lock until they notice. An empty or unreadable file is
    a holder still starting: not dead."""
    try:
        pid = int(path.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _acquire(path: Path, command: str) -> int:
    """A descriptor of ``path`` holding its exclusive lock; ``FolderBusy`` when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if _holder_is_dead(path):
                path.unlink(missing_ok=True)  # a killed command's loader workers may hold it a while: replace it
                continue
            raise FolderBusy(
                f"{path.parent} is in use by another {command} (it holds {path}); wait for it to finish, "
                "or choose another --out"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its holder removed on release: lock the current one


def _write_holder(fd: int, path: Path, command: str) -> None:
    """Write ``<command> pid <pid>`` into the locked file ``path``; a failed write (a full disk) is ``WriteFailed``
    naming the lock file and the space left."""
    try:
        os.ftruncate(fd, 0)
        data = f"{command} pid {os.getpid()}\n".encode()
        while data:  # a write cut short by a file-size limit returns a count; the next one raises
            data = data[os.write(fd, data) :]
    except OSError as err:
        raise write_failed(path, err, "the lock file") from err


@contextmanager
def folder_lock(folder, command: str):
    """Hold ``folder``'s lock (the folder must exist) for the ``with`` block; ``command`` names the holder."""
    path = Path(folder) / LOCK_FILE
    fd = _acquire(path, command)
    try:
        _write_holder(fd, path, command)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
