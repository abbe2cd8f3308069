"""The run folder: --overwrite keeps the earlier run until the new one's first checkpoint, the lock, --resume
against the stored run, best.pt without validation, no checkpoint of non-finite weights, bad cases up front."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from test_loop import TINY

import cga_model.training.loop as loop
from cga_model.cli import main as cga
from cga_model.data.folder_lock import LOCK_FILE, folder_lock
from cga_model.data.synth import synthesize_cohort
from cga_model.training.loop import TrainConfig, split_cases, train
from cga_model.training.run_folder import MANIFEST, PREVIOUS, RUN_FILES, prepare_run_folder

FAST = {**TINY, "workers": 0, "val_every": 1}


@pytest.fixture(scope="module")
def old_run(cohort, tmp_path_factory):
    """A finished one-epoch run (last.pt, best.pt, metrics.jsonl, curves.png)."""
    out = tmp_path_factory.mktemp("old")
    train(TrainConfig(data=str(cohort), out=str(out), epochs=1, **FAST), progress=False)
    return out


def _copy(run: Path, tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out, {name: (out / name).read_bytes() for name in RUN_FILES}


def _unchanged(out: Path, before: dict) -> bool:
    return {name: (out / name).read_bytes() for name in RUN_FILES} == before and not (out / PREVIOUS).exists()


def _train_args(data, out, *extra):
    base = ["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--crop", "16", "16", "16"]
    return base + ["--batch-size", "2", "--base-channels", "4", "--workers", "0", "--val-every", "1", *extra]


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga ")]
    assert len(lines) == 1 and lines[0].startswith("cga train: error: ") and "Traceback" not in err, err
    return lines[0]


def _nan_case(data: Path, role: str) -> tuple[Path, Path]:
    """``data`` (a copy of ``cohort``) with a NaN voxel in a training (``role="train"``) or validation case's FLAIR."""
    train_ids, val_ids = split_cases(sorted(p.name for p in data.iterdir() if p.is_dir()), 0.25, 0)
    case = (train_ids if role == "train" else val_ids)[0]
    path = data / case / f"{case}_flair.nii.gz"
    image = nib.load(path)
    voxels = np.asanyarray(image.dataobj).astype(np.float32)
    voxels[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(voxels, image.affine), path)
    return data, path


@pytest.mark.parametrize(
    "flag", [["--lr", "-1"], ["--batch-size", "0"], ["--foreground-share", "2"], ["--crop", "0", "0", "0"]]
)
def test_overwrite_with_a_bad_flag_keeps_the_old_run(old_run, cohort, tmp_path, flag, capsys):
    out, before = _copy(old_run, tmp_path)
    assert cga(_train_args(cohort, out, "--overwrite", *flag)) == 2
    assert flag[0] in _error(capsys) and _unchanged(out, before)


@pytest.mark.parametrize("role", ["train", "validation"])
def test_a_bad_case_is_refused_before_training_and_keeps_the_old_run(
    old_run, cohort_copy, tmp_path, role, monkeypatch, capsys
):
    out, before = _copy(old_run, tmp_path)
    data, bad = _nan_case(cohort_copy, role)
    monkeypatch.setattr(loop, "train_one_epoch", lambda *a, **k: pytest.fail("an epoch started"))
    assert cga(_train_args(data, out, "--overwrite", "--val-fraction", "0.25")) == 2
    assert str(bad) in _error(capsys) and _unchanged(out, before)


def test_overwrite_failing_in_the_first_epoch_or_its_save_keeps_the_old_run(old_run, cohort, tmp_path, monkeypatch):
    out, before = _copy(old_run, tmp_path)

    def broken_curves(log, png):
        raise OSError(f"disk full writing {png}")

    monkeypatch.setattr(loop, "plot_curves", broken_curves)  # after last.pt, best.pt and the log line are written
    with pytest.raises(OSError, match="disk full"):
        train(TrainConfig(data=str(cohort), out=str(out), epochs=1, **FAST), progress=False, overwrite=True)
    assert _unchanged(out, before) and not (out / LOCK_FILE).exists()


def test_overwrite_replaces_the_old_run_after_its_first_checkpoint(old_run, cohort, tmp_path):
    out, before = _copy(old_run, tmp_path)
    train(TrainConfig(data=str(cohort), out=str(out), epochs=1, seed=5, **FAST), progress=False, overwrite=True)
    assert torch.load(out / "last.pt", weights_only=True)["config"]["seed"] == 5
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1 and not (out / PREVIOUS).exists()


def test_a_swap_cut_short_by_a_kill_is_undone_by_the_next_run(tmp_path):
    out = tmp_path / "run"
    (out / PREVIOUS).mkdir(parents=True)
    (out / PREVIOUS / MANIFEST).write_text(json.dumps(["last.pt", "metrics.jsonl"]))
    (out / PREVIOUS / "last.pt").write_bytes(b"old last")
    (out / "metrics.jsonl").write_text("old log\n")  # moved back already by an earlier, killed restore
    (out / "best.pt").write_bytes(b"new best")  # the new run's: the old run had none
    assert prepare_run_folder(out, resume=True, overwrite=False) is False
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "metrics.jsonl"]
    assert (out / "last.pt").read_bytes() == b"old last" and (out / "metrics.jsonl").read_text() == "old log\n"


def test_a_second_train_into_a_locked_folder_is_refused_at_once(old_run, cohort, tmp_path, monkeypatch, capsys):
    out, before = _copy(old_run, tmp_path)
    monkeypatch.setattr(loop, "open_cases", lambda *a, **k: pytest.fail("the data was read"))
    with folder_lock(out, "cga train"):
        assert cga(_train_args(cohort, out, "--overwrite")) == 2
    message = _error(capsys)
    assert f"{out} is in use by another cga train" in message and _unchanged(out, before)


def test_without_validation_best_pt_is_written_and_named(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    assert cga(_train_args(cohort, out, "--val-fraction", "0")) == 0
    assert capsys.readouterr().out.strip().endswith(f"checkpoints in {out}: last.pt, best.pt")
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["best"] == -best["record"]["loss"]


@pytest.mark.filterwarnings("ignore:.*step skipped:RuntimeWarning")
def test_non_finite_weights_are_never_saved(cohort, tmp_path, monkeypatch):
    step = loop._train_step

    def poisoned(run, batch, epoch):
        terms = step(run, batch, epoch)
        with torch.no_grad():
            next(run.model.parameters()).fill_(float("nan"))
        return terms

    monkeypatch.setattr(loop, "_train_step", poisoned)
    with pytest.raises(RuntimeError, match="no longer finite.*no checkpoint written"):
        train(TrainConfig(data=str(cohort), out=str(tmp_path), epochs=1, **FAST), progress=False)
    assert not any((tmp_path / name).exists() for name in RUN_FILES)


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(lr=1e-2), "--lr"),
        (dict(seed=1), "--seed"),
        (dict(crop=(24, 24, 24)), "--crop"),
        (dict(batch_size=1), "--batch-size"),
        (dict(sequence_dropout=0.5), "--sequence-dropout"),
        (dict(loss=replace(TINY["loss"], inter_weight=0.5)), "--inter-weight"),
    ],
)
def test_resume_refuses_a_contradiction_with_the_stored_run(old_run, cohort, tmp_path, change, named):
    out, before = _copy(old_run, tmp_path)
    config = TrainConfig(data=str(cohort), out=str(out), epochs=2, **{**FAST, **change})
    with pytest.raises(ValueError, match=f"--resume: {named} contradicts the run in"):
        train(config, resume=True, progress=False)
    assert _unchanged(out, before)


def test_resume_refuses_another_dataset_and_no_epochs_left(old_run, cohort, tmp_path, capsys):
    other = tmp_path / "other"
    synthesize_cohort(other, cases=4, seed=2, shape=(24, 24, 16), progress=False)
    out, before = _copy(old_run, tmp_path)
    assert cga(_train_args(other, out, "--resume", "--epochs", "2", "--val-fraction", "0.25")) == 2
    assert "--resume: --data contradicts the run in" in _error(capsys)
    with pytest.raises(ValueError, match="has already trained 1 epoch"):
        train(TrainConfig(data=str(cohort), out=str(out), epochs=1, **FAST), resume=True, progress=False)
    assert _unchanged(out, before)
