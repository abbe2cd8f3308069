"""Synthetic cohorts, the BraTS reader, normalisation, augmentation, and bad data files."""

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from cga_model.data.augmentation import draw_augmentation, jitter_intensity
from cga_model.data.cases import load_case, normalize, pad_to_multiple
from cga_model.data.errors import DataError
from cga_model.data.file_safety import atomic_write, safe_case_path
from cga_model.data.layouts import MODALITIES, find_cases
from cga_model.data.loader import TrainingCrops, open_cases
from cga_model.data.sampling import read_window
from cga_model.data.synth import synthesize_case, synthesize_cohort

SHAPE = (24, 24, 16)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    synthesize_cohort(root, cases=3, seed=5, shape=SHAPE, progress=False)
    return root


def test_synth_is_deterministic_by_seed():
    a, b, c = synthesize_case(SHAPE, seed=1), synthesize_case(SHAPE, seed=1), synthesize_case(SHAPE, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_synth_label_proportions_and_contrast():
    for seed in range(4):
        images, seg = synthesize_case((48, 48, 40), seed=seed)
        brain = images[0] > 0
        tumour = (seg > 0).sum() / brain.sum()
        assert 0.005 < tumour < 0.4, tumour
        assert set(np.unique(seg)) <= {0, 1, 2, 3} and (seg == 3).any() and (seg == 2).any()  # class indices
        flair, t1ce = images[MODALITIES.index("flair")], images[MODALITIES.index("t1ce")]
        assert flair[seg == 2].mean() > flair[(seg == 0) & brain].mean()  # edema bright in flair
        assert t1ce[seg == 3].mean() > t1ce[seg == 1].mean()  # enhancing rim bright in t1ce, necrosis dark
    _, seg = synthesize_case((48, 48, 40), seed=0, enhancing=False)
    assert not (seg == 3).any() and (seg == 1).any()


def test_cohort_layout_and_no_enhancing_fraction(tmp_path):
    ids = synthesize_cohort(tmp_path, cases=5, seed=3, shape=SHAPE, no_enhancing_fraction=1.0, progress=False)
    for case_id in ids:
        for m in ("flair", "t1", "t1ce", "t2"):
            img = nib.load(tmp_path / case_id / f"{case_id}_{m}.nii.gz")
            assert img.get_data_dtype() == np.int16 and img.shape == SHAPE
        seg = nib.load(tmp_path / case_id / f"{case_id}_seg.nii.gz")
        assert seg.get_data_dtype() == np.uint8 and not (np.asanyarray(seg.dataobj) == 4).any()


def test_reader_order_and_normalisation(cohort):
    case = load_case(find_cases(cohort)[0])
    raw_t1ce = np.asanyarray(nib.load(cohort / case.case_id / f"{case.case_id}_t1ce.nii.gz").dataobj)
    assert np.array_equal(case.image[1], raw_t1ce.astype(np.float32))  # order flair, t1ce, t1, t2
    assert case.classes.dtype == np.uint8 and set(np.unique(case.classes)) <= {0, 1, 2, 3}
    brain = np.any(case.image != 0, axis=0)
    image = normalize(case.image)
    for channel in image:
        assert abs(channel[brain].mean()) < 1e-4 and abs(channel[brain].std() - 1) < 1e-3
        assert np.all(channel[~brain] == 0)


def test_pad_crop_and_augment_keep_image_and_labels_aligned():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((4, 10, 12, 6)).astype(np.float32) + 5
    classes = (image[0] > 5).astype(np.uint8)
    padded = pad_to_multiple(image, 8)
    assert padded.shape == (4, 16, 16, 8) and np.all(padded[:, 10:] == 0)
    crop_img, crop_cls = read_window(padded, pad_to_multiple(classes, 8), (3, 5, 0), (8, 8, 8))
    assert crop_img.shape == (4, 8, 8, 8) and crop_cls.shape == (8, 8, 8)
    for seed in range(8):
        augmentation = draw_augmentation(np.random.default_rng(seed), 4)
        aug_img, aug_cls = read_window(image, classes, (0, 0, 0), classes.shape, augmentation.flips)
        aug_img = jitter_intensity(
            torch.from_numpy(aug_img)[None],
            torch.from_numpy(augmentation.scale)[None],
            torch.from_numpy(augmentation.shift)[None],
        )[0].numpy()
        # labels were a threshold of channel 0; flips plus a positive affine jitter must keep them one
        assert aug_img[0][aug_cls == 1].min() > aug_img[0][aug_cls == 0].max()
        assert aug_cls.sum() == classes.sum()


def test_intensity_jitter_is_scale_and_shift_inside_the_brain_only():
    rng = np.random.default_rng(1)
    image = torch.from_numpy(rng.standard_normal((3, 4, 6, 5, 4)).astype(np.float16))
    image[:, :, :2] = 0  # outside the brain in every channel
    image[0, 2, 3] = 0  # zero in one channel only: still brain
    scale, shift = torch.rand(3, 4) * 0.2 + 0.9, torch.rand(3, 4) * 0.2 - 0.1
    out = jitter_intensity(image, scale, shift)
    assert out.dtype == torch.float32
    brain = (image != 0).any(1, keepdim=True)
    expected = torch.where(brain, image.float() * scale[:, :, None, None, None] + shift[:, :, None, None, None], 0.0)
    assert torch.equal(out, expected) and torch.all(out[:, :, :2] == 0) and not torch.all(out[0, 2, 3] == 0)
    assert torch.equal(
        jitter_intensity(image, torch.ones(3, 4), torch.zeros(3, 4)), image.float()
    )  # identity without augmentation


def test_augmentation_draws_are_within_the_papers_bounds():
    for seed in range(20):
        augmentation = draw_augmentation(np.random.default_rng(seed), 4)
        assert augmentation.scale.shape == augmentation.shift.shape == (4,)
        assert np.all(np.abs(augmentation.scale - 1) <= 0.1) and np.all(np.abs(augmentation.shift) <= 0.1)


def test_dataset_items(cohort):
    cases = open_cases(cohort)
    item = TrainingCrops(cases, cases.case_ids, (16, 16, 16), augment=True)[(0, False, 0)]
    assert item["image"].shape == (4, 16, 16, 16) and item["image"].dtype == torch.float16
    assert item["labels"].shape == (16, 16, 16) and item["labels"].dtype == torch.uint8
    whole, _ = cases.validation_case(cases.case_ids[1])
    assert whole.shape == (4, 24, 24, 16)


def _copy_case(cohort, tmp_path):
    src = cohort / find_cases(cohort)[0].case_id
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_missing_modality_is_named(cohort, tmp_path):
    case = _copy_case(cohort, tmp_path)
    (case / f"{case.name}_t1ce.nii.gz").unlink()
    with pytest.raises(DataError, match=f"missing modality file {case.name}_t1ce.nii.gz"):
        load_case(case)


@pytest.mark.parametrize("kind", ["folder", "loop", "dangling"])
def test_a_modality_path_that_is_no_file_is_named_for_what_it_is(cohort, tmp_path, kind):
    """A folder or a symlink that leads nowhere where the T1ce file belongs: not reported as a missing file."""
    case = _copy_case(cohort, tmp_path)
    path = case / f"{case.name}_t1ce.nii.gz"
    path.unlink()
    if kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(path if kind == "loop" else tmp_path / "gone.nii.gz")
    said = {"folder": "is a folder, not a file", "loop": "is a symlink that leads nowhere", "dangling": "leads nowhere"}
    with pytest.raises(DataError, match=said[kind]) as raised:
        load_case(case)
    assert str(path) in str(raised.value) and "t1ce sequence of case" in str(raised.value)
    assert "missing modality file" not in str(raised.value)


def test_mismatched_shapes_non_finite_corrupt_and_bad_labels(cohort, tmp_path):
    case = _copy_case(cohort, tmp_path)
    t2 = case / f"{case.name}_t2.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.int16), np.eye(4)), t2)
    with pytest.raises(DataError, match="t2.nii.gz has shape"):
        load_case(case)
    affine = nib.load(cohort / case.name / f"{case.name}_t2.nii.gz").affine
    nib.save(nib.Nifti1Image(np.full(SHAPE, np.nan, np.float32), affine), t2)
    with pytest.raises(DataError, match="non-finite"):
        load_case(case)
    with gzip.open(t2, "wb") as fh:
        fh.write(b"this is not a nifti file")
    with pytest.raises(DataError, match="cannot read .*t2.nii.gz"):
        load_case(case)
    shutil.copy(cohort / case.name / f"{case.name}_t2.nii.gz", t2)
    nib.save(nib.Nifti1Image(np.full(SHAPE, 7, np.uint8), affine), case / f"{case.name}_seg.nii.gz")
    with pytest.raises(DataError, match=r"_seg.nii.gz: label 7 is not in the brats2021 scheme"):
        load_case(case)


def test_empty_folder(tmp_path):
    with pytest.raises(
        DataError, match="matches no layout: found no NIfTI files or case folders; expected one of: brats2021"
    ):
        find_cases(tmp_path)


def test_safe_paths_and_atomic_write(tmp_path):
    for bad in ("../evil", "a/b", "..", "/abs"):
        with pytest.raises(DataError):
            safe_case_path(tmp_path, bad, ".nii.gz")
    target = tmp_path / "x.txt"
    target.write_text("old")

    def failing(tmp):
        open(tmp, "w").write("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
    atomic_write(target, lambda tmp: open(tmp, "w").write("new"))
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
