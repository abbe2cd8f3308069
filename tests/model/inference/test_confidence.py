"""cga confidence (paper Fig. 8): bin shares per region of the cohort's own scheme, models of any number of
input sequences, and the output rule of every writing command."""

import csv

import matplotlib.image
import nibabel as nib
import numpy as np
import pytest

from cga_model.cli import main
from cga_model.data.layouts import LAYOUTS, find_cases
from cga_model.data.nifti import save_nifti
from cga_model.inference import confidence as conf
from cga_model.inference.predictor import load_predictor

SHAPE = (24, 24, 16)
ROI = ["--roi", "24", "24", "16"]
GLI_REGIONS = {"ET": [3], "TC": [1, 3], "WT": [1, 2, 3]}


def _probs(shape, seed, classes=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=4.0, size=(classes, *shape))
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def _rows(out):
    return list(csv.DictReader((out / "confidence.csv").open()))


def _check_png(path, width_in, height_in, dpi=100):
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(height_in * dpi), round(width_in * dpi))
    assert pixels[..., :3].std() > 0.05  # drawn on, not a blank page


def _direct(p):
    p = np.clip(p, 0, 1)
    return [(p <= 0.1).sum(), ((p > 0.1) & (p <= 0.5)).sum(), ((p > 0.5) & (p <= 0.9)).sum(), (p > 0.9).sum()]


def test_bin_shares_match_a_direct_count():
    probs = _probs((9, 8, 7), 0)
    probs[:, 0, 0, 0] = [0.9, 0.1, 0.0, 0.0]  # bin edges: 0.1 -> first bin, 0.9 -> third
    brain = np.random.default_rng(1).random((9, 8, 7)) > 0.3
    counts = conf.region_bin_counts(probs, conf.scheme_regions(LAYOUTS["brats2023"].scheme, 4), brain)
    assert set(counts) == {"ET", "TC", "WT"}
    for region, classes in GLI_REGIONS.items():
        assert counts[region].tolist() == _direct(probs[classes].sum(0)[brain])
    shares = [r["share"] for r in conf.rows_of("m", counts, 1) if r["region"] == "WT"]
    assert sum(shares) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "layout, classes, regions",
    [
        ("brats2023", 4, GLI_REGIONS),
        ("brats2024", 5, {**GLI_REGIONS, "RC": [4]}),
        ("brats2024", 4, GLI_REGIONS),  # a 4-class model on post-treatment data: no RC channel to count
        ("brats-met", 5, {**GLI_REGIONS, "RC": [4]}),
        ("brats-ped", 5, {"ET": [1], "TC": [1, 2, 3], "WT": [1, 2, 3, 4]}),  # PED: 1 ET, 2 NETC, 3 CC, 4 ED
        ("brats-men-rt", 2, {"GTV": [1]}),
    ],
)
def test_regions_are_the_cohorts_own(layout, classes, regions):
    assert conf.scheme_regions(LAYOUTS[layout].scheme, classes) == {r: tuple(c) for r, c in regions.items()}


@pytest.mark.parametrize(
    "ids, classes, scheme",
    [
        (["BraTS-PED-00001-000"], 5, "brats-ped"),
        (["BraTS-MEN-RT-0001-1"], 2, "brats-men-rt"),
        (["BraTS-GLI-00001-000"], 4, "brats2023"),
        (["BraTS-GLI-00001-100"], 5, "brats2024"),  # a 5-class GLI model: the cohort's layout with RC
        (["BraTS-MET-00001-000"], 5, "brats-met"),
        (["BraTS2021_00001"], 4, "brats2021"),  # no cohort code: the GLI family's classes
    ],
)
def test_the_maps_classes_come_from_the_ids_cohort(tmp_path, ids, classes, scheme):
    assert conf.probs_scheme(ids, classes, tmp_path) == LAYOUTS[scheme].scheme


def test_maps_with_more_classes_than_the_cohort_has_are_refused(tmp_path):
    with pytest.raises(ValueError, match="the probability maps have 5 classes.*brats-men-rt: 0 background, 1 GTV"):
        conf.probs_scheme(["BraTS-MEN-RT-0001-1"], 5, tmp_path)


def _write_maps(folder, case_ids, classes, seed):
    folder.mkdir()
    maps = {}
    for i, case_id in enumerate(case_ids):
        probs = _probs(SHAPE, seed + i, classes)
        save_nifti(folder / f"{case_id}_prob.nii.gz", np.moveaxis(probs, 0, -1), np.eye(4))
        maps[case_id] = probs
    return maps


def test_cga_confidence_puts_two_models_side_by_side(tmp_path, capsys):
    truth = {}
    for name, seed in (("cga", 0), ("baseline", 1)):
        for probs in _write_maps(tmp_path / name, ["A", "B"], 4, seed * 10).values():
            counts = conf.region_bin_counts(probs, conf.scheme_regions(LAYOUTS["brats2021"].scheme, 4))
            truth[name] = conf.add_counts(truth.get(name, {}), counts)
    out = tmp_path / "out"
    assert main(["confidence", "--model", f"CGA={tmp_path / 'cga'}", "--model", f"baseline={tmp_path / 'baseline'}",
                 "--out", str(out)]) == 0  # fmt: skip
    rows = _rows(out)
    assert len(rows) == 2 * 3 * 4 and {r["model"] for r in rows} == {"CGA", "baseline"}
    for name, label in (("cga", "CGA"), ("baseline", "baseline")):
        for region, counts in truth[name].items():
            got = [float(r["share"]) for r in rows if r["model"] == label and r["region"] == region]
            assert got == pytest.approx((counts / counts.sum()).tolist())
    _check_png(out / "confidence.png", 12, 3.6)
    assert main(["confidence", "--model", f"CGA={tmp_path / 'nothing.pt'}", "--out", str(tmp_path / "o2")]) == 2
    assert "give them with --input" in capsys.readouterr().err


@pytest.mark.parametrize(
    "layout, regions", [("brats-ped", ["ET", "TC", "WT"]), ("brats-men-rt", ["GTV"]), ("brats2021", ["ET", "TC", "WT"])]
)
def test_a_model_of_the_cohort_counts_its_own_regions(cohorts, tmp_path, layout, regions):
    """A MEN-RT model has one input channel (T1c) and two classes: only GTV is counted; a PED model counts PED's
    ET (class 1), not the GLI ET (class 3)."""
    data, checkpoint = cohorts[layout]
    out = tmp_path / "out"
    assert main(["confidence", "--model", f"m={checkpoint}", "--input", str(data), "--out", str(out), *ROI]) == 0
    rows = _rows(out)
    assert list(dict.fromkeys(r["region"] for r in rows)) == regions
    model, config = load_predictor(checkpoint)
    cases = find_cases(data)
    scheme = LAYOUTS[layout].scheme
    expected = {}
    for _, probs, brain in conf.case_probabilities(model, config, checkpoint, cases, (24, 24, 16), 0.5, "cpu"):
        for region, classes in scheme.regions.items():
            expected[region] = expected.get(region, 0) + np.asarray(_direct(probs[list(classes)].sum(0)[brain]))
    for region in regions:
        got = [int(r["voxels"]) for r in rows if r["region"] == region]
        assert got == expected[region].tolist()
    _check_png(out / "confidence.png", max(6, 4 * len(regions)), 3.6)


def test_probability_maps_of_ped_cases_are_read_with_ped_classes(cohorts, tmp_path):
    data, checkpoint = cohorts["brats-ped"]
    pred, out = tmp_path / "pred", tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(pred), "--probs"]) == 0
    assert main(["confidence", "--model", f"m={pred}", "--out", str(out)]) == 0  # classes from the IDs' cohort
    probs = [np.moveaxis(np.asarray(nib.load(p).dataobj), -1, 0) for p in sorted(pred.glob("*_prob*"))]
    et = sum(np.asarray(_direct(p[1])) for p in probs)  # PED's ET is class 1
    assert [int(r["voxels"]) for r in _rows(out) if r["region"] == "ET"] == et.tolist()
    assert main(["confidence", "--model", f"m={pred}", "--input", str(data), "--out", str(out), "--overwrite"]) == 0
    assert {r["region"] for r in _rows(out)} == {"ET", "TC", "WT"}


def test_a_gli_model_on_ped_cases_is_refused(cohorts, tmp_path, capsys):
    _, gli = cohorts["brats2021"]
    data, _ = cohorts["brats-ped"]
    assert main(["confidence", "--model", f"m={gli}", "--input", str(data), "--out", str(tmp_path / "o"), *ROI]) == 2
    assert "has no label for" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# the output rule of every writing command


def _maps_folder(tmp_path):
    _write_maps(tmp_path / "maps", ["A"], 4, 0)
    return tmp_path / "maps"


@pytest.mark.parametrize("existing", ["confidence.csv", "confidence.png"])
def test_existing_outputs_are_replaced_only_with_overwrite(tmp_path, existing, capsys):
    maps, out = _maps_folder(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / existing).write_bytes(b"the user's file")
    assert main(["confidence", "--model", f"m={maps}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cga confidence: error: ") and f"{existing} exists" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == [existing] and (out / existing).read_bytes() == b"the user's file"
    assert main(["confidence", "--model", f"m={maps}", "--out", str(out), "--overwrite"]) == 0
    assert len(_rows(out)) == 12 and (out / existing).read_bytes() != b"the user's file"


@pytest.mark.parametrize("inside", ["maps", "data"])
def test_out_inside_an_input_is_refused_even_with_overwrite(cohorts, tmp_path, inside, capsys):
    maps = _maps_folder(tmp_path)
    data, _ = cohorts["brats2021"]
    out = (maps if inside == "maps" else data) / "conf"
    argv = ["confidence", "--model", f"m={maps}", "--out", str(out), "--overwrite"]
    assert main(argv + (["--input", str(data)] if inside == "data" else [])) == 2
    assert "is inside the input" in capsys.readouterr().err and not out.exists()


def test_symlinked_outputs_keep_their_links(tmp_path):
    maps, out = _maps_folder(tmp_path), tmp_path / "out"
    (tmp_path / "real").mkdir()
    out.symlink_to(tmp_path / "real")
    (out / "confidence.csv").symlink_to(tmp_path / "archive.csv")  # to nothing yet: replaces nothing
    assert main(["confidence", "--model", f"m={maps}", "--out", str(out)]) == 0
    assert out.is_symlink() and (out / "confidence.csv").is_symlink()
    assert len(list(csv.DictReader((tmp_path / "archive.csv").open()))) == 12
    assert (tmp_path / "real" / "confidence.png").is_file()
    assert not [p for p in (tmp_path / "real").iterdir() if p.name.startswith(".")]  # no temporary file left
