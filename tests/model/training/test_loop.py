"""Training, resume after SIGKILL, DDP, prediction and the cga CLI on tiny synthetic data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cga_model.cli import main as cga
from cga_model.nn.config import ModelConfig
from cga_model.nn.loss_config import LossConfig
from cga_model.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(
    crop=(16, 16, 16),
    batch_size=2,
    model=ModelConfig(base_channels=4),
    val_fraction=0.25,
    loss=LossConfig(inter_start_epoch=1),
    lr=3e-3,
)


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    train(TrainConfig(data=str(cohort), out=str(out), epochs=6, **TINY), progress=False)
    return out


def _records(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_training_loss_falls_and_outputs_exist(trained):
    records = _records(trained)
    assert [r["epoch"] for r in records] == list(range(1, 7))
    assert records[-1]["dice"] < records[0]["dice"]
    assert records[0]["inter"] == 0  # before inter_start_epoch (joining is tested exactly in test_losses)
    for name in ("last.pt", "best.pt", "curves.png"):
        assert (trained / name).is_file()
    state = torch.load(trained / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "rng", "config"} <= set(state) and state["epoch"] == 5


def _train_cmd(data, out, epochs, *extra):
    return [
        sys.executable,
        "-m",
        "cga_model",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--crop",
        "16",
        "16",
        "16",
        "--batch-size",
        "1",
        "--base-channels",
        "4",
        "--val-fraction",
        "0",
        *extra,
    ]


def test_resume_after_sigkill_matches_uninterrupted_run(cohort, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    epochs = 6  # the kill lands right after the first checkpoint: five more epochs cannot finish in that time
    proc = subprocess.Popen(
        _train_cmd(cohort, killed, epochs), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)  # into the next epoch, or still writing the log line of the first (resume handles both)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_records(killed)) if (killed / "metrics.jsonl").exists() else 0
    assert done_before < epochs, "the kill must land mid-run"
    subprocess.run(_train_cmd(cohort, killed, epochs, "--resume"), env=env, check=True, capture_output=True)
    subprocess.run(_train_cmd(cohort, clean, epochs), env=env, check=True, capture_output=True)
    assert [r["epoch"] for r in _records(killed)] == list(
        range(1, epochs + 1)
    )  # each epoch logged once: at most the killed one redone
    a = torch.load(killed / "last.pt", weights_only=True)["model"]
    b = torch.load(clean / "last.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_ddp_two_processes_hold_identical_weights(cohort, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29531",
        str(ROOT / "tests" / "model" / "training" / "helpers" / "ddp_train.py"),
        str(cohort),
        str(tmp_path / "run"),
        str(tmp_path / "w"),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    w0 = torch.load(tmp_path / "w.rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "w.rank1.pt", weights_only=True)
    initial = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    for key in w0:
        running = key.endswith(("running_mean", "running_var", "num_batches_tracked"))
        assert running or torch.equal(w0[key], w1[key]), key  # BatchNorm statistics are each rank's own
        assert torch.equal(w0[key], initial[key])  # rank 0 saves its own, statistics included
    assert len(_records(tmp_path / "run")) == 1  # only rank 0 logs


def test_predict_writes_nifti_with_input_geometry(trained, cohort, tmp_path):
    out = tmp_path / "pred"
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(trained / "best.pt"),
                "--input",
                str(cohort),
                "--out",
                str(out),
                "--roi",
                "16",
                "16",
                "16",
                "--tta",
                "--probs",
            ]
        )
        == 0
    )
    for case in sorted(p for p in cohort.iterdir() if p.is_dir()):
        pred = nib.load(out / f"{case.name}.nii.gz")
        ref = nib.load(case / f"{case.name}_flair.nii.gz")
        assert pred.get_data_dtype() == np.uint8 and pred.shape == ref.shape
        np.testing.assert_array_equal(pred.affine, ref.affine)
        assert set(np.unique(np.asanyarray(pred.dataobj))) <= {0, 1, 2, 4}
        probs = np.asanyarray(nib.load(out / f"{case.name}_prob.nii.gz").dataobj)
        np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-4)
        assert (out / f"{case.name}_overlay.png").stat().st_size > 1000
    csv = tmp_path / "m.csv"
    assert cga(["evaluate", "--pred", str(out), "--gt", str(cohort), "--out", str(csv)]) == 0
    lines = csv.read_text().splitlines()
    assert (
        lines[0].startswith("case_id,layout,ET_dice")
        and "ET_lesion_dice" in lines[0]
        and [line.split(",")[0] for line in lines[-3:]] == ["mean", "std", "median"]
    )
    assert csv.with_suffix(".png").is_file()


def test_cli_bad_inputs_fail_cleanly(trained, cohort, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert cga(["predict", "--checkpoint", str(trained / "best.pt"), "--input", str(empty), "--out", str(out)]) == 2
    assert "matches no layout: found no NIfTI files or case folders" in capsys.readouterr().err and not out.exists()

    broken = tmp_path / "broken" / "CASE1"
    broken.mkdir(parents=True)
    for m in ("flair", "t1", "t2"):
        (broken / f"CASE1_{m}.nii.gz").write_bytes(
            (next(cohort.iterdir()) / f"{next(cohort.iterdir()).name}_{m}.nii.gz").read_bytes()
        )
    assert (
        cga(["predict", "--checkpoint", str(trained / "best.pt"), "--input", str(broken.parent), "--out", str(out)])
        == 2
    )
    assert "missing modality file CASE1_t1ce.nii.gz" in capsys.readouterr().err
    assert not any(out.glob("*.nii.gz"))

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert (
        cga(["predict", "--checkpoint", str(trained / "best.pt"), "--input", str(cohort), "--out", str(a_file / "sub")])
        == 2
    )
    assert "not writable" in capsys.readouterr().err

    assert (
        cga(
            [
                "train",
                "--data",
                str(cohort),
                "--out",
                str(trained),
                "--epochs",
                "7",
                "--base-channels",
                "8",
                "--resume",
                "--val-fraction",
                "0.25",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "another model configuration" in err and "base_channels: checkpoint 4 vs requested 8" in err

    assert cga(["predict", "--checkpoint", str(tmp_path / "nope.pt"), "--input", str(cohort), "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err

    escaping = tmp_path / "esc" / "a..b"
    escaping.mkdir(parents=True)
    src = next(p for p in cohort.iterdir() if p.is_dir())
    for m in ("flair", "t1", "t1ce", "t2"):
        (escaping / f"a..b_{m}.nii.gz").write_bytes((src / f"{src.name}_{m}.nii.gz").read_bytes())
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(trained / "best.pt"),
                "--input",
                str(escaping.parent),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "not a safe file name" in capsys.readouterr().err
    assert not any((tmp_path / "o2").glob("*.nii.gz"))

    gt_bad = tmp_path / "gtbad"
    (gt_bad).mkdir()
    pred_dir = tmp_path / "p3"
    pred_dir.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), pred_dir / "X.nii.gz")
    (gt_bad / "X").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 5), np.uint8), np.eye(4)), gt_bad / "X" / "X_seg.nii.gz")
    assert cga(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_bad), "--out", str(tmp_path / "m.csv")]) == 2
    assert "differs from ground truth shape" in capsys.readouterr().err and not (tmp_path / "m.csv").exists()


def test_non_finite_loss_stops_with_last_good_checkpoint(cohort, tmp_path, monkeypatch):
    import cga_model.training.loop as train_module

    class Exploding(train_module.CGALoss):
        def forward(self, output, labels, epoch):
            terms = super().forward(output, labels, epoch)
            return terms._replace(total=terms.total * float("nan"))

    monkeypatch.setattr(train_module, "CGALoss", Exploding)
    config = TrainConfig(data=str(cohort), out=str(tmp_path / "r"), epochs=2, max_bad_steps=2, **TINY)
    with (
        pytest.warns(RuntimeWarning, match="non-finite loss"),
        pytest.raises(RuntimeError, match="last good checkpoint"),
    ):
        train(config, progress=False)
