"""Dataset layouts: label tables both ways, detection from file names, one channel order, and the refusals."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from cga_model.data.cases import load_case
from cga_model.data.errors import DataError
from cga_model.data.labels import CLASS_NAMES, REGIONS
from cga_model.data.layouts import LAYOUTS, MODALITIES, find_cases
from cga_model.data.synth import synthesize_cohort
from cga_model.nn.checkpoint import check_model_fits, data_record, model_channel_order

SHAPE = (16, 16, 8)
# The table, spelled independently of layouts.py: layout -> {label value: class index}
EXPECTED = {
    "brats2021": {0: 0, 1: 1, 2: 2, 4: 3},
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 3},
    "brats2024": {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
    "brats-ssa": {0: 0, 1: 1, 2: 2, 3: 3},
    "brats-men": {0: 0, 1: 1, 2: 2, 3: 3},
    "brats-goat": {0: 0, 1: 1, 2: 2, 3: 3},
    "brats-met": {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},
    "brats-ped": {0: 0, 1: 1, 2: 2, 3: 3, 4: 4},  # classes of its own: 1 ET, 2 NETC, 3 CC, 4 ED
    "brats-men-rt": {0: 0, 1: 1},
    "msd": {0: 0, 1: 2, 2: 1, 3: 3},  # MSD: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour
}
EXPECTED_REGIONS = {  # region -> label values, per layout (docs/data.md, the layouts and their regions)
    "brats2021": {"ET": (4,), "TC": (1, 4), "WT": (1, 2, 4)},
    "brats2023": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)},
    "brats2024": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3), "RC": (4,)},
    "brats-ssa": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)},
    "brats-men": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)},
    "brats-goat": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)},
    "brats-met": {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3), "RC": (4,)},
    "brats-ped": {"ET": (1,), "TC": (1, 2, 3), "WT": (1, 2, 3, 4)},
    "brats-men-rt": {"GTV": (1,)},
    "msd": {"ET": (3,), "TC": (2, 3), "WT": (1, 2, 3)},
}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """The same 2-case synthetic cohort (seed 3) in every layout; brats2024 with a cavity in every case."""
    roots = {}
    for name in LAYOUTS:
        roots[name] = tmp_path_factory.mktemp(name)
        synthesize_cohort(roots[name], cases=2, seed=3, shape=SHAPE, layout=name, cavity_fraction=1.0, progress=False)
    return roots


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_label_table_both_ways(name):
    scheme = LAYOUTS[name].scheme
    values, classes = np.array(list(EXPECTED[name])), np.array(list(EXPECTED[name].values()))
    assert scheme.to_classes(values).tolist() == classes.tolist() and scheme.to_classes(values).dtype == np.uint8
    assert scheme.to_labels(classes).tolist() == values.tolist() and scheme.to_labels(classes).dtype == np.uint8
    assert scheme.num_classes == len(EXPECTED[name]) and set(scheme.regions) == set(EXPECTED_REGIONS[name])
    assert {r: scheme.region_values(r) for r in scheme.regions} == EXPECTED_REGIONS[name]
    volume = np.random.default_rng(0).choice(values, size=(6, 5, 4))
    assert np.array_equal(scheme.to_labels(scheme.to_classes(volume)), volume)
    assert scheme.to_classes(values.astype(np.float32)).tolist() == classes.tolist()  # float NIfTI data


def test_one_class_meaning_across_layouts():
    assert CLASS_NAMES[3] == "enhancing tumour" and CLASS_NAMES[4] == "resection cavity" and REGIONS["RC"] == (4,)
    assert LAYOUTS["brats2021"].scheme.to_classes(np.array([4])).item() == 3  # 4 is ET in 2018-2021 ...
    assert LAYOUTS["brats2024"].scheme.to_classes(np.array([4])).item() == 4  # ... and RC in 2024
    assert LAYOUTS["brats2024"].scheme.num_classes == 5


@pytest.mark.parametrize(
    "name,bad,shown",
    [
        ("brats2021", [0, 3], "3"),
        ("brats2023", [0, 4], "4"),
        ("msd", [0, 5], "5"),
        ("brats2021", [0.5, 1.0], "0.5"),
        ("brats2023", [-1, 0], "-1"),
    ],
)
def test_values_outside_a_scheme_are_refused(name, bad, shown):
    with pytest.raises(ValueError, match=rf"label {shown} is not in the {name} scheme"):
        LAYOUTS[name].scheme.to_classes(np.array(bad))


def test_classes_a_scheme_lacks_are_refused():
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 4\) for the brats2023 scheme"):
        LAYOUTS["brats2023"].scheme.to_labels(np.array([0, 4]))


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_detection_from_file_names(cohorts, name):
    cases = find_cases(cohorts[name])
    detected = "brats2023" if name == "brats2024" else name  # same file names: brats2024 must be forced or preferred
    assert [c.layout for c in cases] == [detected] * 2 and all(c.seg is not None for c in cases)
    ids = [c.case_id for c in cases]
    assert ids == sorted(ids) and (name not in ("brats2023", "brats2024") or ids[0].startswith("BraTS-GLI-"))
    assert {c.layout for c in find_cases(cohorts[name], layout=name)} == {name}
    assert find_cases(cohorts[name], prefer="brats2024")[0].layout == ("brats2024" if detected == "brats2023" else name)


def test_single_case_folder_and_msd_subfolders(cohorts):
    case = find_cases(cohorts["brats2023"])[0]
    assert [c.case_id for c in find_cases(cohorts["brats2023"] / case.case_id)] == [case.case_id]
    train = find_cases(cohorts["msd"] / "imagesTr")
    assert [c.case_id for c in train] == [c.case_id for c in find_cases(cohorts["msd"])] and train[0].seg is not None
    tests = cohorts["msd"] / "imagesTs"
    tests.mkdir(exist_ok=True)
    shutil.copy(train[0].images[0], tests / "TEST_001.nii.gz")
    (tests / "._TEST_001.nii.gz").write_bytes(b"macOS resource fork")  # the Task01 archive has these
    unlabelled = find_cases(tests)
    assert [c.case_id for c in unlabelled] == ["TEST_001"] and unlabelled[0].seg is None


def test_one_channel_order_whatever_the_layout(cohorts):
    reference = load_case(find_cases(cohorts["brats2021"])[0])
    for name in ("brats2023", "msd"):
        case = load_case(find_cases(cohorts[name])[0])
        np.testing.assert_array_equal(case.image, reference.image)
        np.testing.assert_array_equal(case.classes, reference.classes)
    raw_t1ce = np.asanyarray(nib.load(find_cases(cohorts["brats2023"])[0].images[MODALITIES.index("t1ce")]).dataobj)
    assert find_cases(cohorts["brats2023"])[0].images[MODALITIES.index("t1ce")].name.endswith("-t1c.nii.gz")
    np.testing.assert_array_equal(reference.image[MODALITIES.index("t1ce")], raw_t1ce.astype(np.float32))
    msd_file = nib.load(find_cases(cohorts["msd"])[0].images[0])
    assert msd_file.shape == SHAPE + (4,)
    np.testing.assert_array_equal(np.asanyarray(msd_file.dataobj)[..., 2], raw_t1ce)  # MSD channel 2 is T1gd


def test_mixed_folder_lists_what_it_found_and_what_each_layout_expects(cohorts, tmp_path):
    for name in ("brats2021", "brats2023"):
        case = find_cases(cohorts[name])[0].case_id
        shutil.copytree(cohorts[name] / case, tmp_path / case)
    with pytest.raises(DataError) as err:
        find_cases(tmp_path)
    message = str(err.value)
    assert "mixes layouts" in message and "1 brats2021 case folder (SYN_0003_000)" in message
    assert "1 brats2023 case folder (BraTS-GLI-00003-000)" in message
    for expected in (
        "brats2021: <ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz",
        "brats2023: <ID>/<ID>-{t2f,t1n,t1c,t2w}.nii.gz",
        "brats-ped: <ID>/<ID>-{t2f,t1n,t1c,t2w}.nii.gz and <ID>-seg.nii.gz (ID like BraTS-PED-",
        "brats-men-rt: <ID>/<ID>_t1c.nii.gz and <ID>_gtv.nii.gz",
        "msd: dataset.json, imagesTr/<case>.nii.gz 4-D",
    ):
        assert expected in message


def test_unknown_folder_is_refused(tmp_path):
    (tmp_path / "patient1").mkdir()
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.int16), np.eye(4)), tmp_path / "patient1" / "T1.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.int16), np.eye(4)), tmp_path / "loose.nii.gz")
    with pytest.raises(
        DataError,
        match=r"matches no layout: found 1 unrecognised case folder \(patient1\), "
        r"1 NIfTI file directly in the folder \(loose.nii.gz\); expected one of: brats2021",
    ):
        find_cases(tmp_path)


def test_forced_layout_must_match_the_file_names(cohorts):
    with pytest.raises(
        DataError, match=r"--layout brats2021 expects <ID>/<ID>_\{flair.*holds brats2023 files.*brats2023 or brats2024"
    ):
        find_cases(cohorts["brats2023"], layout="brats2021")
    with pytest.raises(
        DataError, match="unknown layout 'brats2019'; known layouts: brats2021, brats2023, brats2024, brats-ssa, "
    ):
        find_cases(cohorts["brats2023"], layout="brats2019")


def _relabel(tmp_path, cohorts, name, old, new):
    root = tmp_path / name
    shutil.copytree(cohorts[name], root)
    case = find_cases(root)[0]
    seg = np.asanyarray(nib.load(case.seg).dataobj).copy()
    assert (seg == old).any()
    seg[seg == old] = new
    nib.save(nib.Nifti1Image(seg, nib.load(case.seg).affine), case.seg)
    return case


def test_wrong_labels_name_the_file_value_and_likely_layout(cohorts, tmp_path):
    post_treatment = find_cases(cohorts["brats2024"])[0]  # detected as brats2023: its RC label 4 is refused
    with pytest.raises(
        DataError,
        match=rf"{post_treatment.seg.name}: label 4 is not in the brats2023 scheme .*"
        r"likely layout: brats2024, which has the same file names \(pass --layout brats2024\)",
    ):
        load_case(post_treatment)
    assert load_case(find_cases(cohorts["brats2024"], layout="brats2024")[0]).classes.max() == 4
    case = _relabel(tmp_path, cohorts, "brats2021", 4, 3)  # 2023-style ET under 2018-2021 names
    with pytest.raises(
        DataError,
        match=rf"{case.seg}: label 3 is not in the brats2021 scheme "
        r".*values fit brats2023 or brats-ssa or brats-men or brats-goat: ",
    ):
        load_case(case)
    case = _relabel(tmp_path, cohorts, "msd", 2, 7)
    with pytest.raises(
        DataError,
        match=rf"{case.seg.name}: label 7 is not in the msd scheme "
        r".*no layout that reads labels as msd does uses these values",
    ):
        load_case(case)


def test_msd_modality_order_is_checked(cohorts, tmp_path):
    root = tmp_path / "msd"
    shutil.copytree(cohorts["msd"], root)
    description = json.loads((root / "dataset.json").read_text())
    assert description["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    description["modality"] = {"0": "T1w", "1": "FLAIR", "2": "t1gd", "3": "T2w"}
    (root / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(DataError, match=r"dataset.json: modality order \('T1w', 'FLAIR', 't1gd', 'T2w'\), expected"):
        find_cases(root)


def test_checkpoint_record_and_what_a_model_can_write():
    record = data_record("brats2024")
    assert record == {
        "layout": "brats2024",
        "label_scheme": {
            "name": "brats2024",
            "values": [0, 1, 2, 3, 4],
            "names": ["background", "NETC", "SNFH", "ET", "RC"],
        },
        "channels": ["flair", "t1ce", "t1", "t2"],
    }
    check_model_fits(4, record, "brats2024", "m.pt")  # a 4-class model writes into a scheme with RC
    with pytest.raises(
        DataError,
        match=r"m.pt \(trained on brats2024\) predicts 5 classes, but the input's brats2023 scheme .* "
        r"has no label for: resection cavity",
    ):
        check_model_fits(5, record, "brats2023", "m.pt")
    assert model_channel_order({"channels": ["t1", "t2", "flair", "t1ce"]}, "m.pt") == [2, 3, 0, 1]
    assert model_channel_order({}, "old.pt") == [0, 1, 2, 3]  # checkpoints from before layouts
    with pytest.raises(DataError, match=r"\['dwi'\] are not in any layout"):
        model_channel_order({"channels": ["flair", "dwi"]}, "m.pt")


def test_empty_msd_task_is_refused(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "dataset.json").write_text(
        json.dumps({"modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}})
    )
    with pytest.raises(
        DataError, match=r"no msd cases in .*: found 1 msd images folder \(imagesTr\); expected dataset.json"
    ):
        find_cases(tmp_path)
