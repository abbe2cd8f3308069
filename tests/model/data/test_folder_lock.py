"""folder_lock: one holder per folder, refused at once with the folder named; the lock file exists only while held;
cga preprocess into a locked cache folder is refused before anything is written."""

import os
import subprocess
import sys

import pytest

from cga_model.cli import main as cga
from cga_model.data.folder_lock import LOCK_FILE, FolderBusy, folder_lock


def test_a_second_holder_is_refused_and_the_file_goes_with_the_lock(tmp_path):
    with folder_lock(tmp_path, "cga train") as path:
        assert path == tmp_path / LOCK_FILE and path.is_file()
        with pytest.raises(FolderBusy, match=f"{tmp_path} is in use by another cga train"):
            with folder_lock(tmp_path, "cga train"):
                pass
    assert not (tmp_path / LOCK_FILE).exists()
    with folder_lock(tmp_path, "cga train"):  # free again
        pass


def test_a_lock_file_left_by_a_killed_holder_is_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text("cga train pid 1\n")
    with folder_lock(tmp_path, "cga preprocess") as path:
        assert path.read_text().startswith("cga preprocess pid ")


def test_preprocess_into_a_locked_cache_is_refused(cohort, tmp_path, capsys):
    data, cache = cohort, tmp_path / "cache"
    cache.mkdir()
    with folder_lock(cache, "cga preprocess"):
        assert cga(["preprocess", "--data", str(data), "--out", str(cache), "--workers", "1"]) == 2
        assert sorted(p.name for p in cache.iterdir()) == [LOCK_FILE]
    err = capsys.readouterr().err
    assert (
        err.startswith(f"cga preprocess: error: {cache} is in use by another cga preprocess") and err.count("\n") == 1
    )
    assert cga(["preprocess", "--data", str(data), "--out", str(cache), "--workers", "1"]) == 0
    assert not (cache / LOCK_FILE).exists()


def _hold_from_another_process(path, recorded_pid):
    """A process holding ``path``'s lock with ``recorded_pid`` in the file, as a killed run's loader worker does."""
    script = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"os.write(fd, b'cga train pid {recorded_pid}\\n')\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_lock_left_to_a_dead_commands_workers_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = _hold_from_another_process(tmp_path / LOCK_FILE, int(gone.stdout))
    try:
        with folder_lock(tmp_path, "cga train") as path:
            assert path.read_text().startswith("cga train pid ")
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_of_a_live_command_is_still_refused(tmp_path):
    live = _hold_from_another_process(tmp_path / LOCK_FILE, os.getppid())  # a process that exists
    try:
        with pytest.raises(FolderBusy, match="in use by another cga train"):
            with folder_lock(tmp_path, "cga train"):
                pass
    finally:
        live.kill()
        live.wait()
