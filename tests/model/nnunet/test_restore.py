"""cga nnunet-restore: nnU-Net's label values back to each cohort's own, every file checked before the first write."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from cga_model.cli import main as cga
from cga_model.data.cases import load_case
from cga_model.data.layouts import LAYOUTS, find_cases
from cga_model.data.synth import synthesize_cohort

SHAPE = (24, 24, 16)


def _converted(tmp_path, layout: str, name: str = "Dataset921_Cohort"):
    """``(data, dataset, predictions)``: a 2-case cohort, its nnU-Net dataset, and its labelsTr as nnU-Net's
    predictions (the values nnU-Net would write for a perfect model)."""
    data, dataset = tmp_path / "data", tmp_path / name
    synthesize_cohort(data, cases=2, seed=5, shape=SHAPE, layout=layout, progress=False)
    assert cga(["nnunet-convert", "--data", str(data), "--out", str(dataset)]) == 0
    predictions = tmp_path / "predictions"
    shutil.copytree(dataset / "labelsTr", predictions)
    return data, dataset, predictions


def _argv(dataset, predictions, out) -> list:
    return ["nnunet-restore", "--dataset", str(dataset), "--predictions", str(predictions), "--out", str(out)]


@pytest.mark.parametrize("layout", ["brats2023", "brats-ped", "brats-men-rt", "brats2021"])
def test_restored_predictions_hold_the_cohorts_label_values(tmp_path, layout):
    data, dataset, predictions = _converted(tmp_path, layout)
    out = tmp_path / "restored"
    assert cga(_argv(dataset, predictions, out)) == 0
    scheme = LAYOUTS[layout].scheme
    for files in find_cases(data):
        case = load_case(files)
        restored = nib.load(out / f"{case.case_id}.nii.gz")
        np.testing.assert_array_equal(np.asarray(restored.dataobj), np.asarray(scheme.values)[case.classes])
        np.testing.assert_array_equal(restored.affine, nib.load(predictions / f"{case.case_id}.nii.gz").affine)
    nnunet_values = np.asarray(nib.load(next(predictions.iterdir())).dataobj)
    if layout in ("brats2023", "brats-ped"):  # the two numberings differ here: a copy would be wrong
        assert not np.array_equal(np.asarray(nib.load(out / next(predictions.iterdir()).name).dataobj), nnunet_values)


def _refused(capsys, argv, *words):
    assert cga(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cga nnunet-restore: error:")
    for word in words:
        assert word in err
    return err


def test_the_table_nnunet_copied_into_the_predictions_is_read_by_default(tmp_path, capsys):
    data, dataset, predictions = _converted(tmp_path, "brats-ped")
    argv = ["nnunet-restore", "--predictions", str(predictions), "--out", str(tmp_path / "restored")]
    _refused(capsys, argv, f"--predictions {predictions}", "no dataset.json", "--dataset")
    shutil.copy(dataset / "dataset.json", predictions)  # as nnUNetv2_predict does
    assert cga(argv) == 0
    case = load_case(find_cases(data)[0])
    restored = np.asarray(nib.load(tmp_path / "restored" / f"{case.case_id}.nii.gz").dataobj)
    np.testing.assert_array_equal(restored, np.asarray(LAYOUTS["brats-ped"].scheme.values)[case.classes])


def test_a_value_nnunet_does_not_have_is_refused_before_any_write(tmp_path, capsys):
    _, dataset, predictions = _converted(tmp_path, "brats2023")
    last = sorted(predictions.iterdir())[-1]
    image = nib.load(last)
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, image.affine, image.header), last)
    out = tmp_path / "restored"
    argv = _argv(dataset, predictions, out)
    _refused(capsys, argv, str(last), "value 7", "[0, 1, 2, 3]")
    assert not out.exists()  # the first file was valid, but nothing was written


def test_non_integer_predictions_are_refused(tmp_path, capsys):
    _, dataset, predictions = _converted(tmp_path, "brats2023")
    first = sorted(predictions.iterdir())[0]
    image = nib.load(first)
    nib.save(nib.Nifti1Image(np.full(image.shape, 0.5, np.float32), image.affine), first)
    argv = _argv(dataset, predictions, tmp_path / "r")
    _refused(capsys, argv, str(first), "non-integer")


def test_output_rule_existing_files_and_inputs(tmp_path, capsys):
    _, dataset, predictions = _converted(tmp_path, "brats2023")
    out = tmp_path / "restored"
    argv = _argv(dataset, predictions, out)
    assert cga(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _refused(capsys, argv, "exists", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert cga([*argv, "--overwrite"]) == 0
    _refused(capsys, [*_argv(dataset, predictions, predictions), "--overwrite"], str(predictions))
    assert cga(_argv(dataset, predictions, predictions / "sub")) == 2  # never inside an input
    assert not (predictions / "sub").exists()


def test_a_dataset_not_written_by_the_converter_is_refused(tmp_path, capsys):
    _, dataset, predictions = _converted(tmp_path, "brats2023")
    info = json.loads((dataset / "dataset.json").read_text())
    del info["cga_source"]
    (dataset / "dataset.json").write_text(json.dumps(info))
    argv = _argv(dataset, predictions, tmp_path / "r")
    _refused(capsys, argv, "cga_source", "cga nnunet-convert")
    _refused(capsys, [*argv[:2], str(tmp_path / "nothing"), *argv[3:]], "no dataset.json")
