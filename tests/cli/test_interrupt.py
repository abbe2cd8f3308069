"""Ctrl-C in any cga command: one line ``cga <command>: interrupted``, exit status 130, and only the empty
folders the command created are removed; preprocess workers leave SIGINT to the parent."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

import cga_model.cli as cli
from cga_model.cli import main as cga
from cga_model.data.folder_lock import LOCK_FILE
from cga_model.data.preprocess import _ignore_interrupts

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "synth": ("_synth", lambda out: ["synth", str(out)]),
    "preprocess": ("_preprocess", lambda out: ["preprocess", "--data", "d", "--out", str(out), "--workers", "1"]),
    "train": ("_train", lambda out: ["train", "--data", "d", "--out", str(out)]),
    "predict": ("_predict", lambda out: ["predict", "--checkpoint", "c", "--input", "i", "--out", str(out)]),
}


def _interrupt(make_folder: bool, fill: bool):
    def command(args):
        if make_folder:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        if fill:
            (Path(args.out) / "kept.txt").write_text("x")
        raise KeyboardInterrupt

    return command


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ctrl_c_prints_one_line_exits_130_and_removes_the_empty_folder_it_made(command, tmp_path, monkeypatch, capsys):
    name, argv = COMMANDS[command]
    monkeypatch.setattr(cli, name, _interrupt(make_folder=True, fill=False))
    out = tmp_path / "new"
    assert cga(argv(out)) == 130
    assert capsys.readouterr().err == f"cga {command}: interrupted\n" and not out.exists()


@pytest.mark.parametrize("fill", [False, True])
def test_ctrl_c_keeps_a_folder_that_existed_or_holds_files(fill, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_predict", _interrupt(make_folder=True, fill=fill))
    out = tmp_path / ("new" if fill else "existing")
    if not fill:
        out.mkdir()
    assert cga(COMMANDS["predict"][1](out)) == 130
    assert out.is_dir() and capsys.readouterr().err == "cga predict: interrupted\n"


def test_ctrl_c_during_an_extension_import_is_an_interruption_not_an_internal_error(tmp_path, monkeypatch, capsys):
    def command(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ctrl_c:  # what a pybind11 module (matplotlib's) raises when Ctrl-C hits its import
            raise ImportError("initialization failed") from ctrl_c

    monkeypatch.setattr(cli, "_predict", command)
    monkeypatch.setenv("CGA_DEBUG", "")
    assert cga(COMMANDS["predict"][1](tmp_path / "new")) == 130
    assert capsys.readouterr().err == "cga predict: interrupted\n"


def test_ctrl_c_in_evaluate(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_evaluate", _interrupt(make_folder=False, fill=False))
    assert cga(["evaluate", "--pred", "p", "--gt", "g", "--out", str(tmp_path / "m.csv")]) == 130
    assert capsys.readouterr().err == "cga evaluate: interrupted\n"


def test_ctrl_c_in_train_says_how_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"")
    monkeypatch.setattr(cli, "_train", _interrupt(make_folder=False, fill=False))
    assert cga(COMMANDS["train"][1](out)) == 130
    err = capsys.readouterr().err
    assert err.startswith("cga train: interrupted; ") and "--resume" in err and err.count("\n") == 1


def test_preprocess_workers_ignore_sigint():
    with ProcessPoolExecutor(1, initializer=_ignore_interrupts) as pool:
        assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN


def test_a_ctrl_c_while_the_loader_workers_start_is_raised_once_they_run(cohort, tmp_path, monkeypatch, capsys):
    """A SIGINT while ``iter(loader)`` forks its workers (Python would raise it inside an at-fork callback, print
    a traceback and drop it) is held until the iterator exists, then stops ``cga train`` with its one line."""
    started, real_iter = [], torch.utils.data.DataLoader.__iter__

    def iterate(loader):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the workers start
        iterator = real_iter(loader)
        started.append(iterator)
        return iterator

    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", iterate)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started ignored
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--crop", "16", "16", "16", "--base-channels", "4", "--val-fraction", "0"]
    assert cga(["train", "--data", str(cohort), "--out", str(out), *flags, "--workers", "1"]) == 130
    assert len(started) == 1  # raised once the workers were started, not amid their start
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga")]
    assert len(lines) == 1 and lines[0].startswith("cga train: interrupted") and "Traceback" not in err, err
    assert signal.signal(signal.SIGINT, previous) is signal.default_int_handler  # Ctrl-C is Python's again


def test_sigint_during_a_real_training_run(cohort, tmp_path):
    data, out = cohort, tmp_path / "run"
    cmd = [sys.executable, "-m", "cga_model", "train", "--data", str(data), "--out", str(out), "--epochs", "50"]
    cmd += ["--crop", "16", "16", "16", "--batch-size", "1", "--base-channels", "4", "--val-fraction", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd + ["--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even if we run ignored
    )
    deadline = time.time() + 180
    while not (out / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: to the command and its loader worker
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.decode().splitlines() if line.startswith("cga ")]
    assert proc.returncode == 130 and len(lines) == 1 and "Traceback" not in err.decode(), err.decode()[-2000:]
    assert lines[0].startswith("cga train: interrupted; ") and "--resume" in lines[0]
    assert (out / "last.pt").is_file() and not (out / LOCK_FILE).exists()
