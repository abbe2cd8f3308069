"""Nothing lost, nothing silently wrong, one-line errors for the faults a careful user hits."""

import json
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import cga_kernels as ck
from cga_kernels import reference
from cga_model.cli import main as cga
from cga_model.data.cases import load_case, normalize
from cga_model.data.errors import DataError
from cga_model.data.file_safety import atomic_write
from cga_model.data.synth import synthesize_cohort
from cga_model.nn.config import ModelConfig
from cga_model.training.loop import TrainConfig, train

TINY = ["--crop", "16", "16", "16", "--batch-size", "1", "--base-channels", "4", "--workers", "0"]


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """Three cases of 16x16x16. The tests of ``trained_run`` train and resume on its ``cubes`` instead."""
    root = tmp_path_factory.mktemp("cubes")
    synthesize_cohort(root, cases=3, seed=3, shape=(16, 16, 16), progress=False)
    return root


def _case_dirs(root):
    return sorted(p for p in Path(root).iterdir() if p.is_dir())


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga ")]  # progress bars may precede it
    assert len(lines) == 1 and lines[0].startswith(f"cga {command}: error: ") and "Traceback" not in err, err
    return lines[0]


# ---- data loss and access -------------------------------------------------------------------


def test_train_into_an_existing_run_needs_resume_or_overwrite(trained_run, trained_run_flags, cohort, capsys):
    before = (trained_run / "last.pt").read_bytes(), (trained_run / "metrics.jsonl").read_text()
    assert cga(["train", "--data", str(cohort), "--out", str(trained_run), "--epochs", "1", *trained_run_flags]) == 2
    err = _one_line_error(capsys, "train")
    assert "--resume" in err and "--overwrite" in err
    assert ((trained_run / "last.pt").read_bytes(), (trained_run / "metrics.jsonl").read_text()) == before


def test_overwrite_starts_the_run_afresh(cubes, tmp_path):
    out = tmp_path / "r"
    args = ["train", "--data", str(cubes), "--out", str(out), "--epochs", "1", "--val-fraction", "0", *TINY]
    assert cga(args) == 0 and cga(args + ["--overwrite"]) == 0
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]


def test_evaluate_out_png_does_not_replace_the_csv(cubes, tmp_path, capsys):
    pred = _copy_predictions(cubes, tmp_path / "pred")
    assert (
        cga(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--gt",
                str(cubes),
                "--out",
                str(tmp_path / "m.png"),
                "--metrics",
                "legacy",
            ]
        )
        == 2
    )
    assert ".csv" in _one_line_error(capsys, "evaluate")
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f.txt", lambda tmp: Path(tmp).write_text("x"))
        (tmp_path / "direct.txt").write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "f.txt").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "direct.txt").stat().st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_resume_restores_the_log_line_of_a_checkpointed_epoch(trained_run, trained_run_flags, cohort, tmp_path):
    """SIGKILL after last.pt was saved but before the log line: --resume writes the line from the checkpoint."""
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "last.pt").write_bytes((trained_run / "last.pt").read_bytes())
    (killed / "metrics.jsonl").write_text("")
    (killed / ".best.pt.abc.tmp.pt").write_bytes(b"partial")  # a kill during best.pt's write
    assert (
        cga(
            [
                "train",
                "--data",
                str(cohort),
                "--out",
                str(killed),
                "--epochs",
                "2",
                *trained_run_flags,
                "--resume",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert not list(killed.glob(".*.tmp*"))


def test_resume_drops_log_lines_of_epochs_never_checkpointed(trained_run, trained_run_flags, cohort, tmp_path):
    """A log line written for an epoch whose checkpoint was lost is redone, not duplicated."""
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "last.pt").write_bytes((trained_run / "last.pt").read_bytes())
    line = (trained_run / "metrics.jsonl").read_text()
    (killed / "metrics.jsonl").write_text(line + line.replace('"epoch": 1', '"epoch": 2'))
    assert (
        cga(
            [
                "train",
                "--data",
                str(cohort),
                "--out",
                str(killed),
                "--epochs",
                "2",
                *trained_run_flags,
                "--resume",
            ]
        )
        == 0
    )
    assert [json.loads(x)["epoch"] for x in (killed / "metrics.jsonl").read_text().splitlines()] == [1, 2]


# ---- silently wrong -------------------------------------------------------------------------


def _with_seg(case_dir: Path, values: np.ndarray, dtype) -> None:
    seg = next(case_dir.glob("*_seg.nii.gz"))
    img = nib.load(seg)
    nib.save(nib.Nifti1Image(values.astype(dtype), img.affine), seg)


@pytest.mark.parametrize(
    "value,dtype",
    [
        (3.5, np.float32),
        (65540, np.int32),
        (-0.5, np.float32),
        (np.nan, np.float32),
        (1e30, np.float64),
        (1 + 1e-9, np.float64),
        (2**24 + 1, np.int32),
    ],
)
def test_segmentation_values_are_checked_before_any_cast(cubes, tmp_path, value, dtype):
    case = tmp_path / _case_dirs(cubes)[0].name
    case.mkdir()
    for f in _case_dirs(cubes)[0].iterdir():
        (case / f.name).write_bytes(f.read_bytes())
    seg = np.zeros((16, 16, 16))
    seg[0, 0, 0] = value
    _with_seg(case, seg, dtype)
    with pytest.raises(DataError, match=r"_seg\.nii\.gz.*not in the brats2021 scheme"):
        load_case(case)


def _copy_predictions(cohort, pred: Path) -> Path:
    pred.mkdir()
    for case in _case_dirs(cohort):
        (pred / f"{case.name}.nii.gz").write_bytes(next(case.glob("*_seg.nii.gz")).read_bytes())
    return pred


def test_evaluate_refuses_a_prediction_holding_3_5(cubes, tmp_path, capsys):
    pred = _copy_predictions(cubes, tmp_path / "pred")
    first = sorted(pred.iterdir())[0]
    img = nib.load(first)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[data == 4] = 3.5
    nib.save(nib.Nifti1Image(data, img.affine), first)
    assert (
        cga(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--gt",
                str(cubes),
                "--out",
                str(tmp_path / "m.csv"),
                "--metrics",
                "legacy",
            ]
        )
        == 2
    )
    assert "3.5" in _one_line_error(capsys, "evaluate") and not (tmp_path / "m.csv").exists()


def test_evaluate_refuses_a_missing_case_unless_allowed(cubes, tmp_path, capsys):
    pred = _copy_predictions(cubes, tmp_path / "pred")
    missing = sorted(pred.iterdir())[0]
    missing.unlink()
    out = tmp_path / "m.csv"
    assert cga(["evaluate", "--pred", str(pred), "--gt", str(cubes), "--out", str(out), "--metrics", "legacy"]) == 2
    err = _one_line_error(capsys, "evaluate")
    assert missing.name[: -len(".nii.gz")] in err and "--allow-missing" in err
    assert (
        cga(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--gt",
                str(cubes),
                "--out",
                str(out),
                "--metrics",
                "legacy",
                "--allow-missing",
            ]
        )
        == 0
    )
    import csv

    rows = {row["case_id"]: row for row in csv.DictReader(out.open())}
    scored = rows[missing.name[: -len(".nii.gz")]]  # as an empty prediction: no overlap with the tumour
    assert float(scored["WT_dice"]) == 0.0 and float(scored["WT_sensitivity"]) == 0.0
    assert sum(1 for case_id in rows if case_id.startswith("SYN")) == 3


def test_evaluate_checks_geometry_and_takes_spacing_from_the_truth(cubes, tmp_path, capsys):
    pred = _copy_predictions(cubes, tmp_path / "pred")
    first = sorted(pred.iterdir())[0]
    img = nib.load(first)
    flipped = img.affine.copy()
    flipped[0, 0] = -1
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), flipped), first)
    assert (
        cga(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--gt",
                str(cubes),
                "--out",
                str(tmp_path / "m.csv"),
                "--metrics",
                "legacy",
            ]
        )
        == 2
    )
    assert "affine" in _one_line_error(capsys, "evaluate")

    from cga_model.evaluation.evaluate import evaluate_folder

    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine), first)
    reference_rows = evaluate_folder(pred, cubes, metric_sets=("legacy",), progress=False)
    header = img.header.copy()
    header.set_zooms((3.0, 3.0, 3.0))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, header=header), first)
    header_rows = evaluate_folder(pred, cubes, metric_sets=("legacy",), progress=False)
    assert header_rows[0]["WT_hd95"] == reference_rows[0]["WT_hd95"]


def test_case_folders_that_do_not_parse_beside_valid_ones_are_listed(cubes, tmp_path, trained_run, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for case in _case_dirs(cubes):
        (data / case.name).mkdir()
        for f in case.iterdir():
            (data / case.name / f.name).write_bytes(f.read_bytes())
    (data / "EmptyCase").mkdir()
    odd = data / "OddCase"
    odd.mkdir()
    (odd / "OddCase_flair.nii").write_bytes(b"")
    for argv, command in [
        (["train", "--data", str(data), "--out", str(tmp_path / "r"), "--epochs", "1", *TINY], "train"),
        (
            [
                "predict",
                "--checkpoint",
                str(trained_run / "last.pt"),
                "--input",
                str(data),
                "--out",
                str(tmp_path / "p"),
            ],
            "predict",
        ),
        (
            [
                "evaluate",
                "--pred",
                str(_copy_predictions(cubes, tmp_path / "pred")),
                "--gt",
                str(data),
                "--out",
                str(tmp_path / "m.csv"),
            ],
            "evaluate",
        ),
    ]:
        assert cga(argv) == 2
        err = _one_line_error(capsys, command)
        assert "EmptyCase" in err and "OddCase" in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


def test_nii_cohort_is_told_about_nii_gz(trained_run, tmp_path, capsys):
    case = tmp_path / "data" / "C1"
    case.mkdir(parents=True)
    for m in ("flair", "t1", "t1ce", "t2", "seg"):
        (case / f"C1_{m}.nii").write_bytes(b"")
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(trained_run / "last.pt"),
                "--input",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "p"),
            ]
        )
        == 2
    )
    assert ".nii.gz" in _one_line_error(capsys, "predict")


@pytest.mark.parametrize("overlap", ["-0.1", "1", "1.5"])
def test_overlap_outside_0_1_is_refused(trained_run, cubes, tmp_path, overlap, capsys):
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(trained_run / "last.pt"),
                "--input",
                str(cubes),
                "--out",
                str(tmp_path / "p"),
                "--overlap",
                overlap,
            ]
        )
        == 2
    )
    assert "--overlap" in _one_line_error(capsys, "predict") and not (tmp_path / "p").exists()


def test_a_modality_scaled_to_1e30_normalises():
    rng = np.random.default_rng(0)
    image = rng.uniform(1, 2, size=(4, 8, 8, 8)).astype(np.float32)
    scaled = image.copy()
    scaled[0] *= 1e30
    expected = normalize(image.copy())
    got = normalize(scaled)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0], expected[0], atol=1e-4)


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_epochs_must_be_at_least_one(cubes, tmp_path, epochs, capsys):
    out = tmp_path / "r"
    assert cga(["train", "--data", str(cubes), "--out", str(out), "--epochs", epochs, *TINY]) == 2
    assert "--epochs" in _one_line_error(capsys, "train") and not out.exists()


def test_an_epoch_of_skipped_steps_is_divergence_not_loss_zero(cubes, tmp_path, monkeypatch):
    import cga_model.training.loop as loop

    class Exploding(loop.CGALoss):
        def forward(self, output, labels, epoch):
            terms = super().forward(output, labels, epoch)
            return terms._replace(total=terms.total * float("nan"))

    monkeypatch.setattr(loop, "CGALoss", Exploding)
    config = TrainConfig(
        data=str(cubes),
        out=str(tmp_path / "r"),
        epochs=2,
        max_bad_steps=100,
        crop=(16, 16, 16),
        batch_size=1,
        workers=0,
        val_fraction=0,
        model=ModelConfig(base_channels=4),
    )
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="every step had a non-finite loss") as err:
        train(config, progress=False)
    assert "last good checkpoint: none" in str(err.value)
    assert (
        not (tmp_path / "r" / "metrics.jsonl").exists() or "0.0" not in (tmp_path / "r" / "metrics.jsonl").read_text()
    )
    assert not (tmp_path / "r" / "last.pt").exists()


def test_hard_mask_double_backward_matches_gradgradcheck():
    x = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 7))
    for classes in (None, [1]):
        for residual in (True, False):
            assert torch.autograd.gradgradcheck(
                lambda x, residual=residual, classes=classes: ck.intra_class_update(
                    x, labels, 3, residual=residual, classes=classes
                )[:2],
                (x,),
            )


def test_compiled_op_refuses_label_minus_one_as_eager_does():
    x, labels = torch.randn(1, 2, 8), torch.zeros(1, 8, dtype=torch.long)
    labels[0, 3] = -1
    with pytest.raises(ValueError, match=r"mask labels must be in \[0, 3\)"):
        ck.intra_class_update(x, labels, 3)
    compiled = torch.compile(lambda x, labels: ck.intra_class_update(x, labels, 3)[0], backend="eager", fullgraph=True)
    with pytest.raises(RuntimeError, match=r"mask labels must be in \[0, 3\)"):
        compiled(x, labels)
    labels[0, 3] = 0
    torch.testing.assert_close(compiled(x, labels), ck.intra_class_update(x, labels, 3)[0])


# ---- one-line errors ------------------------------------------------------------------------


def test_out_that_is_a_file(cubes, tmp_path, capsys):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert cga(["train", "--data", str(cubes), "--out", str(a_file), "--epochs", "1", *TINY]) == 2
    assert str(a_file) in _one_line_error(capsys, "train")
    assert cga(["synth", str(a_file), "--cases", "1"]) == 2
    assert str(a_file) in _one_line_error(capsys, "synth")


@pytest.mark.parametrize("out", ["adir", "missing/m.csv"])
def test_evaluate_out_a_directory_or_in_a_missing_folder(cubes, tmp_path, out, capsys):
    pred = _copy_predictions(cubes, tmp_path / "pred")
    (tmp_path / "adir").mkdir()
    assert (
        cga(["evaluate", "--pred", str(pred), "--gt", str(cubes), "--out", str(tmp_path / out), "--metrics", "legacy"])
        == 2
    )
    err = _one_line_error(capsys, "evaluate")
    assert "--out" in err and ".tmp" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_device_cuda_without_a_gpu(cubes, tmp_path, capsys):
    assert (
        cga(["train", "--data", str(cubes), "--out", str(tmp_path / "r"), "--epochs", "1", "--device", "cuda", *TINY])
        == 2
    )
    assert "--device cuda" in _one_line_error(capsys, "train") and not (tmp_path / "r").exists()


def test_validation_case_without_labels_is_refused_before_training(cubes, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for case in _case_dirs(cubes):
        (data / case.name).mkdir()
        for f in case.iterdir():
            if "_seg" not in f.name or case != _case_dirs(cubes)[0]:
                (data / case.name / f.name).write_bytes(f.read_bytes())
    import cga_model.training.loop as loop

    monkeypatch.setattr(loop, "train_one_epoch", lambda *a, **k: pytest.fail("trained before checking the labels"))
    assert (
        cga(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "r"),
                "--epochs",
                "1",
                "--val-fraction",
                "0.5",
                *TINY,
            ]
        )
        == 2
    )
    assert "segmentation" in _one_line_error(capsys, "train")


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 0, 4)])
@pytest.mark.parametrize("impl", [ck, reference])
def test_empty_batch_or_channels_is_a_clear_value_error(shape, impl):
    x = torch.randn(*shape)
    labels = torch.zeros(shape[0], 4, dtype=torch.long)
    for call in (lambda: impl.prototype_pool(x, labels, 3), lambda: impl.intra_class_update(x, labels, 3)):
        with pytest.raises(ValueError, match=r"x must have B >= 1 and C >= 1"):
            call()
    with pytest.raises(ValueError, match=r"proto must have B >= 1, K >= 1 and C >= 1"):
        impl.prototype_scatter(torch.randn(shape[0], 3, shape[1]), labels)


def test_four_d_image_message_does_not_contradict_itself(cubes, tmp_path):
    case = tmp_path / _case_dirs(cubes)[0].name
    case.mkdir()
    for f in _case_dirs(cubes)[0].iterdir():
        (case / f.name).write_bytes(f.read_bytes())
    t1 = next(case.glob("*_t1.nii.gz"))
    img = nib.load(t1)
    nib.save(nib.Nifti1Image(np.stack([np.asanyarray(img.dataobj)] * 2, -1), img.affine), t1)
    with pytest.raises(DataError) as err:
        load_case(case)
    message = str(err.value)
    assert (
        "shape (16, 16, 16, 2)" in message
        and "expected 3-D" in message
        and "expected 3-D (16, 16, 16, 2)" not in message
    )


def test_classes_as_a_tensor_are_accepted():
    x, labels = torch.randn(1, 2, 6), torch.randint(0, 3, (1, 6))
    expected = ck.intra_class_update(x, labels, 3, classes=[1])[0]
    torch.testing.assert_close(ck.intra_class_update(x, labels, 3, classes=torch.tensor([1]))[0], expected)
    torch.testing.assert_close(ck.intra_class_update(x, labels, 3, classes=torch.tensor(1))[0], expected)
    with pytest.raises(ValueError, match="classes must hold class indices"):
        ck.intra_class_update(x, labels, 3, classes=torch.tensor([0.5]))


def test_a_random_file_as_checkpoint_never_advises_weights_only_false(cubes, tmp_path, capsys):
    bad = tmp_path / "random.pt"
    bad.write_bytes(os.urandom(256))
    assert cga(["predict", "--checkpoint", str(bad), "--input", str(cubes), "--out", str(tmp_path / "p")]) == 2
    err = _one_line_error(capsys, "predict")
    assert "weights_only=False" not in err and "not a cga checkpoint" in err and not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    "argv", [["--cases", "-2"], ["--cases", "0"], ["--shape", "0", "8", "8"], ["--shape", "8", "-1", "8"]]
)
def test_synth_refuses_empty_cohorts_and_shapes(tmp_path, argv, capsys):
    assert cga(["synth", str(tmp_path / "s"), *argv]) == 2
    assert argv[0] in _one_line_error(capsys, "synth") and not (tmp_path / "s").exists()


def test_unexpected_exceptions_are_one_line_with_a_hint_to_report(monkeypatch, tmp_path, capsys):
    import cga_model.data.synth as synth

    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(synth, "synthesize_cohort", broken)
    assert cga(["synth", str(tmp_path / "s"), "--cases", "1"]) == 2
    err = _one_line_error(capsys, "synth")
    assert "KeyError" in err and "report" in err and "CGA_DEBUG" in err
