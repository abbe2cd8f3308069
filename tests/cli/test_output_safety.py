"""The output rule and the geometry check at the command line: predict, evaluate, synth, nnunet-convert."""

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from test_failures import _one_line_error

from cga_model import CGAUNet
from cga_model.cli import main as cga
from cga_model.data.layouts import find_cases
from cga_model.data.synth import synthesize_cohort
from cga_model.nn.checkpoint import save_checkpoint

SHAPE = (24, 24, 16)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A base-4 checkpoint, a 2-case brats2021 cohort and a 2-case MSD folder: (checkpoint, cohort, msd)."""
    root = tmp_path_factory.mktemp("safety")
    synthesize_cohort(root / "data", cases=2, seed=7, shape=SHAPE, progress=False)
    synthesize_cohort(root / "msd", cases=2, seed=7, shape=SHAPE, layout="msd", progress=False)
    torch.manual_seed(0)
    model = CGAUNet(base_channels=4)
    save_checkpoint(root / "best.pt", model=model.state_dict(), config={"model": model.config.to_dict()})
    return root / "best.pt", root / "data", root / "msd"


def _predict(checkpoint, data, out, *extra) -> int:
    return cga(["predict", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(out), *extra])


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("sub", ["imagesTr", "labelsTr", "."])
def test_predict_into_its_input_is_refused_even_with_overwrite(setup, sub, capsys):
    checkpoint, _, msd = setup
    before = _snapshot(msd)
    assert _predict(checkpoint, msd, msd / sub, "--overwrite") == 2
    assert "is inside the input" in _one_line_error(capsys, "predict")
    assert _snapshot(msd) == before


def test_predict_replaces_its_own_files_only_with_overwrite(setup, tmp_path, capsys):
    checkpoint, data, _ = setup
    case_id = find_cases(data)[0].case_id
    out = tmp_path / "pred"
    out.mkdir()
    (out / f"{case_id}.nii.gz").write_bytes(b"the user's file")
    assert _predict(checkpoint, data, out) == 2
    err = _one_line_error(capsys, "predict")
    assert f"{case_id}.nii.gz exists" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == [f"{case_id}.nii.gz"]  # nothing else written either
    assert (out / f"{case_id}.nii.gz").read_bytes() == b"the user's file"
    assert _predict(checkpoint, data, out, "--overwrite") == 0
    assert nib.load(out / f"{case_id}.nii.gz").shape == SHAPE


def test_predict_through_symlinks_keeps_the_links(setup, tmp_path):
    checkpoint, data, _ = setup
    case_id = find_cases(data)[0].case_id
    (tmp_path / "real").mkdir()
    (tmp_path / "archive").mkdir()
    out = tmp_path / "link"
    out.symlink_to(tmp_path / "real")
    (out / f"{case_id}.nii.gz").symlink_to(tmp_path / "archive" / f"{case_id}.nii.gz")  # to nothing yet
    assert _predict(checkpoint, data, out) == 0
    assert out.is_symlink() and len(list((tmp_path / "real").glob("*_overlay.png"))) == 2
    assert (out / f"{case_id}.nii.gz").is_symlink()
    assert nib.load(tmp_path / "archive" / f"{case_id}.nii.gz").shape == SHAPE


def test_a_unicode_case_id_is_refused_before_any_case_is_written(setup, tmp_path, capsys):
    checkpoint, data, _ = setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    last = find_cases(copy)[-1].case_id
    renamed = copy / last.replace("SYN", "SYNé")
    (copy / last).rename(renamed)
    for f in renamed.iterdir():
        f.rename(renamed / f.name.replace(last, renamed.name))
    assert _predict(checkpoint, copy, tmp_path / "pred") == 2
    assert "ASCII letters and digits" in _one_line_error(capsys, "predict") and not (tmp_path / "pred").exists()


def test_a_misregistered_case_is_refused_before_any_case_is_written(setup, tmp_path, capsys):
    checkpoint, data, _ = setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    t2 = find_cases(copy)[-1].images[3]
    image = nib.load(t2)
    shifted = image.affine.copy()
    shifted[2, 3] += 3.0
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), shifted), t2)
    assert _predict(checkpoint, copy, tmp_path / "pred") == 2
    assert f"{t2.name}: the sequence's affine differs" in _one_line_error(capsys, "predict")
    assert not (tmp_path / "pred").exists()  # refused before the first case was written


@pytest.mark.parametrize("command", ["synth", "predict"])
def test_a_256_byte_name_is_a_one_line_error(setup, tmp_path, command, capsys):
    checkpoint, data, _ = setup
    out = tmp_path / ("n" * 256)
    status = cga(["synth", str(out), "--cases", "1"]) if command == "synth" else _predict(checkpoint, data, out)
    assert status == 2
    assert "is 256 bytes, over the 255 bytes" in _one_line_error(capsys, command)


def _evaluate(pred, gt, out, *extra) -> int:
    return cga(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--metrics", "legacy", *extra])


@pytest.fixture
def predictions(setup, tmp_path):
    """The cohort's segmentations copied as its predictions."""
    _, data, _ = setup
    pred = tmp_path / "pred"
    pred.mkdir()
    for case in find_cases(data):
        shutil.copy(case.seg, pred / f"{case.case_id}.nii.gz")
    return pred


@pytest.mark.parametrize("existing", ["m.csv", "m.png"])
def test_evaluate_replaces_a_csv_or_png_only_with_overwrite(setup, predictions, tmp_path, existing, capsys):
    _, data, _ = setup
    (tmp_path / existing).write_text("the user's")
    assert _evaluate(predictions, data, tmp_path / "m.csv") == 2
    assert f"{existing} exists" in _one_line_error(capsys, "evaluate")
    assert (tmp_path / existing).read_text() == "the user's"
    assert _evaluate(predictions, data, tmp_path / "m.csv", "--overwrite") == 0
    assert len(list(csv.DictReader((tmp_path / "m.csv").open()))) == 2 + 3  # cases, then mean / std / median


def test_evaluate_through_a_symlinked_csv_keeps_the_link(setup, predictions, tmp_path):
    _, data, _ = setup
    (tmp_path / "results").mkdir()
    link = tmp_path / "m.csv"
    link.symlink_to(tmp_path / "results" / "m.csv")  # to nothing yet: nothing to replace
    assert _evaluate(predictions, data, link) == 0
    assert link.is_symlink() and (tmp_path / "results" / "m.csv").read_text().startswith("case_id")


def test_evaluate_names_the_prediction_for_a_label_outside_the_scheme(setup, predictions, tmp_path, capsys):
    _, data, _ = setup
    first = sorted(predictions.iterdir())[0]
    image = nib.load(first)
    labels = np.asanyarray(image.dataobj).copy()
    labels[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(labels, image.affine), first)
    assert _evaluate(predictions, data, tmp_path / "m.csv") == 2
    err = _one_line_error(capsys, "evaluate")
    assert f"{first.name} (a prediction): label 5" in err and "predict with --layout brats2021" in err


def test_synth_into_an_existing_cohort(tmp_path, capsys):
    out = tmp_path / "c"
    argv = ["synth", str(out), "--cases", "2", "--shape", "16", "16", "16"]
    assert cga(argv) == 0
    before = _snapshot(out)
    assert cga(argv) == 2
    err = _one_line_error(capsys, "synth")
    assert "exists" in err and "pass --overwrite" in err
    assert cga(argv + ["--overwrite"]) == 0 and _snapshot(out).keys() == before.keys()
    for other in (["--layout", "msd"], ["--seed", "3"], ["--cases", "1"]):
        assert cga(argv + other + ["--overwrite"]) == 2
        assert "would mix cohorts or layouts" in _one_line_error(capsys, "synth")
    assert _snapshot(out) == before


def test_synth_into_a_folder_of_other_files_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cga(["synth", str(tmp_path), "--cases", "1", "--shape", "16", "16", "16", "--overwrite"]) == 2
    assert "notes.txt" in _one_line_error(capsys, "synth") and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt"
    ]


@pytest.mark.parametrize(
    "data, out, message",
    [
        ("Dataset501_X", "Dataset501_X", "is inside the input"),
        ("Dataset501_X", "Dataset501_X/Dataset502_Y", "is inside the input"),
        ("Dataset501_X/raw", "Dataset501_X", "holds the input"),
    ],
)
def test_nnunet_convert_never_writes_into_or_replaces_its_data(tmp_path, data, out, message, capsys):
    synthesize_cohort(tmp_path / data, cases=1, seed=2, shape=(16, 16, 16), progress=False)
    before = _snapshot(tmp_path)
    assert cga(["nnunet-convert", "--data", str(tmp_path / data), "--out", str(tmp_path / out), "--overwrite"]) == 2
    assert message in _one_line_error(capsys, "nnunet-convert")
    assert _snapshot(tmp_path) == before
