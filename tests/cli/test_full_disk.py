"""A disk that fills while ``cga train`` writes: every file of a run (the log, the curves, the lock file, besides the
checkpoints) fails in one line naming the file, the space left and what to do, and keeps what ``--resume`` needs.

The full disk is a file-size limit (``RLIMIT_FSIZE``, ``SIGXFSZ`` ignored), set at the moment named: a write past it
fails with ``EFBIG`` as one on a full disk fails with ``ENOSPC``."""

import json
import resource
import shutil
import signal

import pytest

from cga_model.cli import main as cga
from cga_model.data.file_safety import WriteFailed, atomic_append
from cga_model.data.folder_lock import LOCK_FILE
from cga_model.evaluation.plots import pyplot
from cga_model.nn.checkpoint import load_checkpoint
from cga_model.training import loop

FULL = 64  # bytes: the file-size limit standing for a full disk (every file of a run is larger, the lock file not)


@pytest.fixture
def fill_disk():
    """``fill_disk(limit)`` sets the file-size limit now, ``fill_disk(None)`` frees the disk again (as does the
    test's end, which also puts ``SIGXFSZ`` back)."""
    pyplot()  # matplotlib set up (and its font cache written) before any limit
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    yield lambda limit=FULL: resource.setrlimit(resource.RLIMIT_FSIZE, (soft if limit is None else limit, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga")]  # progress bars may precede it
    assert len(lines) == 1 and lines[0].startswith("cga train: error: ") and "Traceback" not in err, err
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def _epochs(run) -> list:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _fill_after(monkeypatch, fill_disk, name: str) -> None:
    """The disk fills right after the training loop wrote ``name`` (``last.pt``: before the log line; ``log``:
    after the log line, before the curves)."""
    if name == "last.pt":
        real = loop.save_checkpoint

        def save_then_fill(path, **state):
            real(path, **state)
            if path.name == "last.pt":
                fill_disk()

        monkeypatch.setattr(loop, "save_checkpoint", save_then_fill)
    else:
        real_append = loop.atomic_append

        def append_then_fill(path, text, **kwargs):
            real_append(path, text, **kwargs)
            fill_disk()

        monkeypatch.setattr(loop, "atomic_append", append_then_fill)


@pytest.mark.parametrize("fills_after, fails", [("last.pt", "metrics.jsonl"), ("log", "curves.png")])
def test_a_full_disk_after_the_checkpoint_names_the_file_and_resume_goes_on(
    trained_run, cohort, trained_run_flags, tmp_path, monkeypatch, fill_disk, capsys, fills_after, fails
):
    run = shutil.copytree(trained_run, tmp_path / "run")
    log_before = (run / "metrics.jsonl").read_text()
    _fill_after(monkeypatch, fill_disk, fills_after)
    argv = ["train", "--data", str(cohort), "--out", str(run), "--resume", *trained_run_flags]
    assert cga([*argv, "--epochs", "2"]) == 2
    line = _error_line(capsys)
    assert str(run / fails) in line and "MiB free" in line and "free some space" in line, line
    assert f"{run / 'last.pt'} holds epoch 2" in line and "--resume" in line, line
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # epoch 2 (0-based 1) is saved
    if fails == "metrics.jsonl":
        assert (run / "metrics.jsonl").read_text() == log_before  # whole: no line cut short
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary file, no lock left
    monkeypatch.undo()
    fill_disk(None)
    assert cga([*argv, "--epochs", "3"]) == 0, capsys.readouterr().err
    assert _epochs(run) == [1, 2, 3] and (run / "curves.png").stat().st_size > FULL


def test_a_full_disk_before_the_first_checkpoint_says_nothing_is_saved(
    cohort, trained_run_flags, tmp_path, monkeypatch, fill_disk, capsys
):
    real = loop.save_checkpoint

    def fill_then_save(path, **state):
        fill_disk()
        real(path, **state)

    monkeypatch.setattr(loop, "save_checkpoint", fill_then_save)
    run = tmp_path / "run"
    assert cga(["train", "--data", str(cohort), "--out", str(run), "--epochs", "1", *trained_run_flags]) == 2
    line = _error_line(capsys)
    assert "cannot write the checkpoint" in line and "MiB free" in line and "no epoch of this run is saved" in line
    assert not (run / "last.pt").exists() and not (run / "best.pt").exists()


def test_a_full_disk_when_the_run_folder_is_locked_names_the_lock_file(
    cohort, trained_run_flags, tmp_path, fill_disk, capsys
):
    run = tmp_path / "run"
    fill_disk(4)  # bytes: the lock file's "cga train pid N" is longer
    assert cga(["train", "--data", str(cohort), "--out", str(run), "--epochs", "1", *trained_run_flags]) == 2
    line = _error_line(capsys)
    assert str(run / LOCK_FILE) in line and "MiB free" in line and "free some space" in line, line
    assert not run.exists()  # the folder the failed command created is removed again


def test_a_failed_append_leaves_the_file_whole(tmp_path, fill_disk):
    log = tmp_path / "metrics.jsonl"
    atomic_append(log, "a" * FULL + "\n", what="the training log")
    fill_disk(2 * FULL)
    with pytest.raises(WriteFailed) as failed:
        atomic_append(log, "b" * FULL + "\n", what="the training log")
    assert f"cannot write the training log {log}" in str(failed.value) and "MiB free" in str(failed.value)
    assert log.read_text() == "a" * FULL + "\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
