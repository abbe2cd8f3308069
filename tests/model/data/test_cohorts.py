"""BraTS 2023-2025 cohorts: chosen from the case IDs, labels as the official configs, any number of sequences."""

import re
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from cga_model.data.cases import check_headers, load_case
from cga_model.data.cohorts import COHORT_LAYOUTS, cohort_code
from cga_model.data.errors import DataError
from cga_model.data.layouts import LAYOUTS, find_cases, likely_layouts
from cga_model.data.loader import RawCases, TrainingCrops, training_batch
from cga_model.data.synth import synthesize_cohort
from cga_model.nn.checkpoint import check_model_fits, data_record, model_channel_order

SHAPE = (16, 16, 8)
CONFIGED = [n for n, lay in LAYOUTS.items() if lay.config]


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    roots = {}
    for name in ("brats2023", "brats-ped", "brats-men-rt"):
        roots[name] = tmp_path_factory.mktemp(name)
        synthesize_cohort(roots[name], cases=2, seed=3, shape=SHAPE, layout=name, cavity_fraction=1.0, progress=False)
    return roots


def _official_groups(config: str) -> dict:
    """``{group: label values}`` read from the config file the brats-evaluation package ships."""
    brats_evaluation = pytest.importorskip("brats_evaluation", reason="the official configs")
    text = (brats_evaluation.config_path("gli").parent / config).read_text()
    groups = re.findall(r"^    (\w+): !Label(?:Merge)?Group\n.*?value_labels: \[([\d, ]+)\]", text, re.M | re.S)
    return {name.upper(): tuple(int(v) for v in values.split(",")) for name, values in groups}


@pytest.mark.parametrize("name", CONFIGED)
def test_regions_and_groups_are_the_official_configs(name):
    scheme = LAYOUTS[name].scheme
    official = _official_groups(LAYOUTS[name].config)
    if "RC" not in scheme.regions:  # config_gli.yaml serves GLI 2023 too, whose scheme has no label 4
        official.pop("RC", None)
    assert {r: scheme.region_values(r) for r in scheme.evaluated} == official


def test_cohort_codes_and_unknown_codes():
    assert cohort_code("BraTS-GLI-00000-000") == "GLI" and cohort_code("BraTS-MEN-RT-0001-1") == "MEN-RT"
    assert cohort_code("BraTS-goat-00012") == "GoAT" and cohort_code("patient7") is None
    with pytest.raises(DataError, match="unknown BraTS cohort code 'XYZ'; known codes: GLI, SSA, MEN, GoAT, MET"):
        cohort_code("BraTS-XYZ-00000-000")
    assert set(COHORT_LAYOUTS) == {"GLI", "SSA", "MEN", "GoAT", "MET", "PED", "MEN-RT"}


def test_an_unknown_code_is_refused_whatever_the_layout_forced(cohorts, tmp_path):
    case = find_cases(cohorts["brats2023"])[0]
    folder = tmp_path / "xyz" / case.case_id.replace("GLI", "XYZ")
    folder.mkdir(parents=True)
    for path in case.sources:
        shutil.copy(path, folder / path.name.replace("GLI", "XYZ"))
    for forced in (None, "brats2023"):
        with pytest.raises(DataError, match=r"unknown BraTS cohort code 'XYZ'; known codes: GLI, .*, MEN-RT") as err:
            find_cases(tmp_path / "xyz", layout=forced)
        assert "--layout" not in str(err.value)  # forcing a layout does not help: the advice must not offer it


def test_ped_is_never_read_with_gli_labels(cohorts, tmp_path):
    root = cohorts["brats-ped"]
    assert {c.layout for c in find_cases(root)} == {"brats-ped"}
    assert {c.layout for c in find_cases(root, prefer="brats2024")} == {"brats-ped"}  # a GLI checkpoint's layout
    for forced in ("brats2024", "brats2023", "brats-met"):
        with pytest.raises(DataError, match=rf"--layout {forced} reads labels as .* name the BraTS PED cohort"):
            find_cases(root, layout=forced)
    case = load_case(find_cases(root)[0])
    seg = np.asanyarray(nib.load(find_cases(root)[0].seg).dataobj)
    np.testing.assert_array_equal(case.classes, seg)  # PED's classes are its label values: 1 stays ET
    assert set(np.unique(seg).tolist()) == {0, 1, 2, 3, 4}  # with cysts (3) and edema (4)
    for values in ([0, 5], [0, 1, 2, 3, 4, 5]):
        hint = likely_layouts(values, "brats-ped")
        assert not any(n in hint for n in ("brats2023", "brats2024", "brats-met", "brats2021", "msd")), hint
    assert "likely layout: brats2024" in likely_layouts([0, 1, 2, 3, 4], "brats2023")  # GLI's own RC scheme
    assert "brats-ped" not in likely_layouts([0, 1, 2, 3, 4], "brats2023")
    mixed = tmp_path / "mixed"
    for name in ("brats2023", "brats-ped"):
        shutil.copytree(find_cases(cohorts[name])[0].images[0].parent, mixed / find_cases(cohorts[name])[0].case_id)
    with pytest.raises(DataError, match="mixes BraTS cohorts, whose labels differ"):
        find_cases(mixed)


def test_a_gli_model_never_writes_ped_labels():
    with pytest.raises(DataError, match=r"trained on brats2023\) predicts 4 classes, but the input's brats-ped scheme"):
        check_model_fits(4, data_record("brats2023"), "brats-ped", "m.pt")
    check_model_fits(5, data_record("brats-ped"), "brats-ped", "m.pt")
    check_model_fits(4, data_record("brats2023"), "brats-met", "m.pt")  # MET reads 1-3 as GLI does


def test_men_rt_has_one_channel_and_models_name_missing_sequences(cohorts, tmp_path):
    cases = find_cases(cohorts["brats-men-rt"])
    assert cases[0].layout == "brats-men-rt" and cases[0].images[0].name.endswith("-1_t1c.nii.gz")
    assert cases[0].seg.name.endswith("_gtv.nii.gz") and load_case(cases[0]).image.shape == (1,) + SHAPE
    assert set(np.unique(load_case(cases[0]).classes).tolist()) == {0, 1}
    assert data_record("brats-men-rt")["channels"] == ["t1ce"]
    assert model_channel_order(data_record("brats-men-rt"), "rt.pt", "brats2023") == [1]  # T1c of a GLI case
    with pytest.raises(
        DataError, match=r"needs the sequences flair, t1ce, t1, t2, but brats-men-rt cases have only t1ce"
    ):
        model_channel_order(data_record("brats2023"), "gli.pt", "brats-men-rt")
    root = tmp_path / "gli"
    shutil.copytree(cohorts["brats2023"], root)
    case = find_cases(root)[0]
    case.images[3].unlink()  # its T2w
    for check in (check_headers, load_case):
        with pytest.raises(
            DataError, match=rf"missing modality file {case.images[3].name}: case {case.case_id} has no t2 sequence"
        ):
            check(case)


def test_a_bad_label_in_a_loader_worker_is_one_line(cohorts, tmp_path):
    root = tmp_path / "ped"
    shutil.copytree(cohorts["brats-ped"], root)
    case = find_cases(root)[0]
    seg = nib.load(case.seg)
    bad = np.asanyarray(seg.dataobj).copy()
    bad[0, 0, 0] = 9
    nib.save(nib.Nifti1Image(bad, seg.affine), case.seg)
    cases = RawCases(root)
    loader = torch.utils.data.DataLoader(
        TrainingCrops(cases, cases.case_ids, (8, 8, 8)),
        batch_sampler=[[(0, False, 1)]],
        num_workers=1,
        collate_fn=lambda batch: batch,
    )
    with pytest.raises(DataError) as err:
        training_batch(next(iter(loader)), "cpu")
    message = str(err.value)
    assert message.startswith(f"{case.seg}: label 9 is not in the brats-ped scheme") and "\n" not in message
    assert "Traceback" not in message and "worker" not in message
