"""cga nnunet-convert for every cohort: its sequences as channels, its own regions, labels nnU-Net turns back into
every class, and the source labels recorded (nnU-Net's own LabelManager and integrity check where installed)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cga_model.cli import main as cga
from cga_model.data.cases import load_case
from cga_model.data.layouts import LAYOUTS, find_cases
from cga_model.data.synth import synthesize_cohort
from cga_model.nnunet.convert import dataset_json, label_values, nnunet_regions

SHAPE = (24, 24, 16)


def _paint(info: dict, values: np.ndarray, k: int) -> int:
    """The label nnU-Net writes for a voxel of class ``k``: each region of ``info`` in turn, later ones winning."""
    label = 0
    for region, painted in zip(list(info["labels"])[1:], info["regions_class_order"]):
        if values[k] in info["labels"][region]:
            label = painted
    return label


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_regions_turn_back_into_every_class(layout):
    scheme = LAYOUTS[layout].scheme
    info = dataset_json(LAYOUTS[layout], target="regions", num_training=1, name="X", description="")
    values = label_values(scheme, "regions")
    assert sorted(values.tolist()) == list(range(scheme.num_classes))  # consecutive, as nnU-Net requires
    if "regions_class_order" in info:
        for k in range(scheme.num_classes):
            assert _paint(info, values, k) == values[k]
    for region, classes in scheme.regions.items():  # the cohort's own regions, in nnU-Net's values
        assert sorted(np.asarray(info["labels"][region]).ravel().tolist()) == sorted(values[list(classes)].tolist())


@pytest.mark.parametrize(
    "layout, labels",
    [
        ("brats2021", {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}),
        ("brats2023", {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}),
        ("brats2024", {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3], "RC": [4]}),
        ("brats-met", {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3], "RC": [4]}),
        # PED: 1 ET, 2 NETC, 3 CC, 4 ED; TC would paint CC as NETC, so CC is a region of its own
        ("brats-ped", {"background": 0, "WT": [1, 2, 3, 4], "TC": [2, 3, 4], "ET": [3], "CC": [4]}),
    ],
)
def test_region_labels_per_cohort(layout, labels):
    info = dataset_json(LAYOUTS[layout], target="regions", num_training=1, name="X", description="")
    assert info["labels"] == labels and info["regions_class_order"] == list(range(1, len(labels)))


def test_nnunet_regions_of_ped_add_the_cyst():
    assert nnunet_regions(LAYOUTS["brats-ped"].scheme) == [
        ("WT", (1, 2, 3, 4)),
        ("TC", (1, 2, 3)),
        ("ET", (1,)),
        ("CC", (3,)),
    ]


def test_men_rt_is_one_channel_and_a_plain_gtv_label():
    info = dataset_json(LAYOUTS["brats-men-rt"], target="regions", num_training=1, name="X", description="")
    assert info["channel_names"] == {"0": "T1ce"} and info["labels"] == {"background": 0, "GTV": 1}
    assert "regions_class_order" not in info
    assert info["cga_source"] == {"layout": "brats-men-rt", "labels": {"0": "0 background", "1": "1 GTV"}}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_nnunets_label_manager_reads_every_class_back(layout):
    label_handling = pytest.importorskip("nnunetv2.utilities.label_handling.label_handling")
    scheme = LAYOUTS[layout].scheme
    info = dataset_json(LAYOUTS[layout], target="regions", num_training=1, name="X", description="")
    manager = label_handling.LabelManager(info["labels"], info.get("regions_class_order"))
    values = label_values(scheme, "regions")
    classes = np.arange(scheme.num_classes).reshape(-1, 1, 1)  # one voxel per class
    target = values[classes]
    if manager.has_regions:
        heads = np.stack([np.isin(target[:, 0, 0], r) for r in manager.all_regions]).astype(np.float32)[..., None]
    else:
        heads = (np.arange(scheme.num_classes)[:, None] == target[:, 0, 0][None]).astype(np.float32)[..., None]
    assert manager.num_segmentation_heads == heads.shape[0]
    np.testing.assert_array_equal(manager.convert_probabilities_to_segmentation(heads)[:, 0], values)


@pytest.mark.parametrize(
    "layout, channels, source",
    [
        ("brats-ped", ["FLAIR", "T1ce", "T1", "T2"], {"0": "0 background", "1": "4 ED", "2": "2 NETC", "3": "1 ET",
                                                     "4": "3 CC"}),
        ("brats-men-rt", ["T1ce"], {"0": "0 background", "1": "1 GTV"}),
        ("brats2023", ["FLAIR", "T1ce", "T1", "T2"], {"0": "0 background", "1": "2 SNFH", "2": "1 NETC", "3": "3 ET"}),
    ],
)  # fmt: skip
def test_convert_a_cohort(tmp_path, layout, channels, source):
    data, out = tmp_path / "data", tmp_path / "Dataset911_Cohort"
    synthesize_cohort(data, cases=2, seed=4, shape=SHAPE, layout=layout, progress=False)
    assert cga(["nnunet-convert", "--data", str(data), "--out", str(out)]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert list(info["channel_names"].values()) == channels
    assert info["cga_source"] == {"layout": layout, "labels": source} and info["numTraining"] == 2
    values = label_values(LAYOUTS[layout].scheme, "regions")
    for case_files in find_cases(data):
        case = load_case(case_files)
        images = sorted(p.name for p in (out / "imagesTr").glob(f"{case.case_id}_*.nii.gz"))
        assert images == [f"{case.case_id}_{c:04d}.nii.gz" for c in range(len(channels))]
        for c in range(len(channels)):
            np.testing.assert_array_equal(np.asarray(nib.load(out / "imagesTr" / images[c]).dataobj), case.image[c])
        labels = np.asarray(nib.load(out / "labelsTr" / f"{case.case_id}.nii.gz").dataobj)
        np.testing.assert_array_equal(labels, values[case.classes])
        assert {int(source[str(v)].split()[0]) for v in np.unique(labels)} <= set(LAYOUTS[layout].scheme.values)
    integrity = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    integrity.verify_dataset_integrity(str(out), num_processes=1)  # nnU-Net's own check passes


def test_convert_labels_target_names_the_cohorts_labels(tmp_path):
    data, out = tmp_path / "data", tmp_path / "Dataset912_Ped"
    synthesize_cohort(data, cases=1, seed=4, shape=SHAPE, layout="brats-ped", progress=False)
    assert cga(["nnunet-convert", "--data", str(data), "--out", str(out), "--target", "labels"]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "ET": 1, "NETC": 2, "CC": 3, "ED": 4}
    assert "regions_class_order" not in info
