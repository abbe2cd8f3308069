"""Per layout: cga synth -> train (one tiny epoch) -> predict -> evaluate, checked file by file and against
brats-evaluation."""

import csv
import math
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from cga_model.cli import main as cga
from cga_model.data.layouts import LAYOUTS, find_cases
from cga_model.nn.checkpoint import data_record

pytestmark = pytest.mark.slow  # ten one-epoch trainings: a few minutes on 2 busy cores

SHAPE = ("16", "16", "16")  # one 16^3 window: crops and prediction are single passes
TRAIN = [
    "--epochs",
    "1",
    "--crop",
    "16",
    "16",
    "16",
    "--batch-size",
    "1",
    "--base-channels",
    "4",
    "--val-fraction",
    "0.5",
    "--workers",
    "0",
    "--inter-start-epoch",
    "0",
]


def _forced(name):
    """brats2024 shares brats2023's file names: it must be named wherever no checkpoint says so."""
    return ["--layout", name] if name == "brats2024" else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(name)``: ``(data folder, run folder)`` of a 2-case synthetic cohort (one to train, one to validate) of
    ``name`` and a one-epoch model."""
    done = {}

    def run(name):
        if name not in done:
            root = tmp_path_factory.mktemp(name)
            assert (
                cga(["synth", str(root / "data"), "--layout", name, "--cases", "2", "--seed", "2", "--shape", *SHAPE])
                == 0
            )
            torch.manual_seed(0)
            assert cga(["train", "--data", str(root / "data"), "--out", str(root / "run"), *TRAIN, *_forced(name)]) == 0
            done[name] = (root / "data", root / "run")
        return done[name]

    return run


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """``oracle(name)``: brats-evaluation's evaluator for a layout (the official config it ships for that
    cohort, ``Layout.config``; for brats2021 and msd the GLI config with that layout's region labels)."""
    brats_evaluation = pytest.importorskip(
        "brats_evaluation", reason="the metric oracle; `make test` installs the pinned [brats] extra"
    )
    from panoptica import Panoptica_Evaluator

    configs = brats_evaluation.config_path("gli").parent
    head = (configs / "config_gli.yaml").read_text().split("segmentation_class_groups:")[0]

    def evaluator(name):
        if LAYOUTS[name].config:
            return Panoptica_Evaluator.load_from_config(str(configs / LAYOUTS[name].config))
        scheme = LAYOUTS[name].scheme
        groups = "".join(
            f"    {r.lower()}: !LabelMergeGroup\n      single_instance: false\n"
            f"      value_labels: {list(scheme.region_values(r))}\n"
            for r in scheme.evaluated
        )
        path = tmp_path_factory.mktemp("config") / f"config_{name}.yaml"
        path.write_text(
            f"{head}segmentation_class_groups: !SegmentationClassGroups\n  groups:\n{groups}verbose: false\n"
        )
        return Panoptica_Evaluator.load_from_config(str(path))

    return brats_evaluation.evaluate_single_exam, evaluator


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check_predictions(pred_dir, cases, name):
    """``<ID>.nii.gz`` per case (plus its overlay only): uint8 3-D labels of the layout's scheme, the input's affine
    and spacing."""
    names = {p.name for p in pred_dir.iterdir()}
    assert names == {f"{c.case_id}{suffix}" for c in cases for suffix in (".nii.gz", "_overlay.png")}
    for case in cases:
        pred, source = nib.load(pred_dir / f"{case.case_id}.nii.gz"), nib.load(case.images[0])
        assert pred.get_data_dtype() == np.uint8 and pred.shape == source.shape[:3] and len(pred.shape) == 3
        np.testing.assert_array_equal(pred.affine, source.affine)
        assert pred.header.get_zooms() == source.header.get_zooms()[:3]
        assert set(np.unique(np.asanyarray(pred.dataobj)).tolist()) <= set(LAYOUTS[name].scheme.values)


def _check_against_oracle(rows, pred_dir, cases, name, oracle):
    evaluate_single_exam, evaluator = oracle
    package = evaluator(name)
    for case, row in zip(cases, rows):
        assert row["case_id"] == case.case_id and row["layout"] == name
        result = evaluate_single_exam(str(pred_dir / f"{case.case_id}.nii.gz"), str(case.seg), case.case_id, package)
        assert "error" not in result, result
        for region in LAYOUTS[name].scheme.evaluated:
            theirs = result[region.lower()]
            for ours, key, tol in (
                ("lesion_dice", "sq_dsc", 1e-6),
                ("lesion_hd95", "sq_hd95", 1e-3),
                ("lesion_pq", "pq_dsc", 1e-6),
                ("lesion_tp", "tp", 0),
                ("lesion_fp", "fp", 0),
                ("lesion_fn", "fn", 0),
                ("global_dice", "global_bin_dsc", 1e-6),
                ("global_hd95", "global_bin_hd95", 1e-3),
            ):
                a, b = float(row[f"{region}_{ours}"]), float(theirs[key])
                assert (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= tol, (
                    f"{case.case_id} {region} {ours}: {a} vs {b}"
                )


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_synth_train_predict_evaluate(runs, oracle, tmp_path, name):
    data, run = runs(name)
    scheme = LAYOUTS[name].scheme
    config = torch.load(run / "last.pt", weights_only=True)["config"]
    assert config["layout"] == name and config["label_scheme"]["values"] == list(scheme.values)
    assert config["channels"] == data_record(name)["channels"] and config["model"]["num_classes"] == scheme.num_classes
    assert config["model"]["in_channels"] == len(LAYOUTS[name].modalities)  # 1 for MEN-RT (T1c)
    pred = tmp_path / "pred"
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(run / "last.pt"),
                "--input",
                str(data),
                "--out",
                str(pred),
                "--roi",
                "16",
                "16",
                "16",
            ]
        )
        == 0
    )
    cases = find_cases(data, layout=name)
    _check_predictions(pred, cases, name)
    table = tmp_path / "metrics.csv"
    assert (
        cga(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--gt",
                str(data),
                "--out",
                str(table),
                "--metrics",
                "legacy,lesionwise",
                *_forced(name),
            ]
        )
        == 0
    )
    rows = _read_csv(table)
    assert [r["case_id"] for r in rows[-3:]] == ["mean", "std", "median"] and table.with_suffix(
        ".png"
    ).stat().st_size > 1000
    for region in ("RC", "NETC", "CC", "GTV"):
        expected = region in scheme.evaluated
        assert (f"{region}_lesion_dice" in rows[0]) == expected and (f"{region}_dice" in rows[0]) == expected
    _check_against_oracle(rows[:-3], pred, cases, name, oracle)


def test_a_model_predicts_on_another_layout_with_the_same_modalities(runs, tmp_path):
    """A brats2021 model on the same cases in MSD files: the same classes, written in MSD's label values."""
    data_2021, run = runs("brats2021")
    data_msd = tmp_path / "msd"
    assert cga(["synth", str(data_msd), "--layout", "msd", "--cases", "2", "--seed", "2", "--shape", *SHAPE]) == 0
    for data, out in ((data_2021, tmp_path / "p2021"), (data_msd, tmp_path / "pmsd")):
        assert (
            cga(
                [
                    "predict",
                    "--checkpoint",
                    str(run / "best.pt"),
                    "--input",
                    str(data),
                    "--out",
                    str(out),
                    "--roi",
                    "16",
                    "16",
                    "16",
                ]
            )
            == 0
        )
    msd, b2021 = LAYOUTS["msd"].scheme, LAYOUTS["brats2021"].scheme
    for case_2021, case_msd in zip(find_cases(data_2021), find_cases(data_msd)):
        a = np.asanyarray(nib.load(tmp_path / "p2021" / f"{case_2021.case_id}.nii.gz").dataobj)
        b = np.asanyarray(nib.load(tmp_path / "pmsd" / f"{case_msd.case_id}.nii.gz").dataobj)
        np.testing.assert_array_equal(b, msd.to_labels(b2021.to_classes(a)))
    _check_predictions(tmp_path / "pmsd", find_cases(data_msd), "msd")


def test_schemes_that_cannot_express_the_model_are_refused(runs, tmp_path, capsys):
    data_2023, _ = runs("brats2023")
    _, run_2024 = runs("brats2024")
    capsys.readouterr()  # the fixture's own output, when it ran just now
    out = tmp_path / "refused"
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(run_2024 / "last.pt"),
                "--input",
                str(data_2023),
                "--out",
                str(out),
                "--layout",
                "brats2023",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("cga predict: error: ") and err.count("\n") == 1
    assert "predicts 5 classes, but the input's brats2023 scheme" in err and "has no label for: resection cavity" in err
    assert not out.exists()
    _, run_2023 = runs("brats2023")  # the other way round is fine: a 4-class model writes into the RC scheme
    data_2024, _ = runs("brats2024")
    assert (
        cga(
            [
                "predict",
                "--checkpoint",
                str(run_2023 / "last.pt"),
                "--input",
                str(data_2024),
                "--out",
                str(tmp_path / "ok"),
                "--layout",
                "brats2024",
                "--roi",
                "16",
                "16",
                "16",
            ]
        )
        == 0
    )
    _check_predictions(tmp_path / "ok", find_cases(data_2024, layout="brats2024"), "brats2024")


def test_wrong_labels_and_mixed_folders_fail_cleanly_on_the_command_line(runs, tmp_path, capsys):
    data_2024, _ = runs("brats2024")
    capsys.readouterr()
    assert (
        cga(["train", "--data", str(data_2024), "--out", str(tmp_path / "r"), *TRAIN]) == 2
    )  # RC in a folder detected as brats2023
    err = capsys.readouterr().err
    assert err.split("\r")[-1].startswith("cga train: error: ") and err.count("\n") == 1  # after the progress bar's \r
    assert "-seg.nii.gz: label 4 is not in the brats2023 scheme" in err and "pass --layout brats2024" in err
    mixed = tmp_path / "mixed"
    for name in ("brats2021", "brats2023"):
        case = find_cases(runs(name)[0])[0]
        shutil.copytree(case.images[0].parent, mixed / case.case_id)
    out, run_2021 = tmp_path / "out", runs("brats2021")[1]
    capsys.readouterr()
    assert cga(["predict", "--checkpoint", str(run_2021 / "last.pt"), "--input", str(mixed), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cga predict: error: ") and err.count("\n") == 1 and not out.exists()
    assert (
        "mixes layouts: found " in err
        and "1 brats2021 case folder" in err
        and "1 brats2023 case folder" in err
        and "msd: dataset.json" in err
    )


def test_ped_forced_to_gli_and_a_bad_raw_label_are_one_clean_line(runs, tmp_path, capsys):
    data_ped, _ = runs("brats-ped")
    capsys.readouterr()
    assert cga(["train", "--data", str(data_ped), "--out", str(tmp_path / "r"), *TRAIN, "--layout", "brats2024"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cga train: error: --layout brats2024 reads labels as") and err.count("\n") == 1
    assert "name the BraTS PED cohort" in err and not (tmp_path / "r").exists()
    bad = tmp_path / "bad"
    shutil.copytree(data_ped, bad)
    for case in find_cases(bad):
        seg = nib.load(case.seg)
        labels = np.asanyarray(seg.dataobj).copy()
        labels[0, 0, 0] = 6
        nib.save(nib.Nifti1Image(labels, seg.affine), case.seg)
    train = [a if a != "0" or TRAIN[i - 1] != "--workers" else "1" for i, a in enumerate(TRAIN)]  # one loader worker
    assert cga(["train", "--data", str(bad), "--out", str(tmp_path / "r2"), *train]) == 2
    line = capsys.readouterr().err.split("\r")[-1]
    assert line.startswith("cga train: error: ") and line.count("\n") == 1 and "-seg.nii.gz: label 6 is not in" in line
    assert "Traceback" not in line and "worker" not in line
