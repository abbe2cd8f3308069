"""Hard realistic full-size cases (``cga synth --full-size --difficulty hard``): what makes them hard."""

import numpy as np
import pytest

from cga_model.cli import main as cga
from cga_model.data.cases import load_case
from cga_model.data.layouts import find_cases
from cga_model.data.synth_full_size import FULL_SHAPE, synthesize_full_size_case
from cga_model.data.synth_hard import HARD_CODE, TUMOUR_KINDS, lesion_labels, synthesize_hard_case, thick_slices

SMALL = (96, 96, 64)


def _brain(images):
    return np.any(images != 0, axis=0)


@pytest.mark.parametrize("seed", range(3))
def test_hard_cases_keep_the_brats_proportions_and_no_tumour_outside_the_brain(seed):
    images, classes = synthesize_hard_case(seed, SMALL)
    brain = _brain(images)
    assert np.all(images[:, brain] > 0) and not classes[~brain].any()
    assert 0.15 <= brain.mean() <= 0.22
    assert 0.003 <= (classes > 0).sum() / brain.sum() <= 0.035
    assert set(np.unique(classes)) <= {0, 1, 2, 3} and (classes == 2).any()


@pytest.mark.parametrize("kind", TUMOUR_KINDS)
def test_each_tumour_kind_has_its_sub_regions(kind):
    rng = np.random.default_rng(1)
    inside = np.ones((48, 48, 48), dtype=bool)
    labels = lesion_labels(rng, kind, inside, np.ones(inside.shape, np.float32), radius=9.0, wt_voxels=3000)
    counts = {
        name: int((labels == HARD_CODE[name]).sum()) for name in ("edema", "enhancing", "necrosis", "non_enhancing")
    }
    core = counts["enhancing"] + counts["necrosis"] + counts["non_enhancing"]
    assert 2900 <= core + counts["edema"] <= 3100 and counts["edema"] > 0
    assert (counts["enhancing"] > 0) == (kind != "non_enhancing")
    assert (counts["necrosis"] > 0) == (kind in ("rim", "small_core"))
    assert core / (core + counts["edema"]) < (0.2 if kind == "small_core" else 0.7)


def _nearest_mean_recall(images, classes):
    """Mean recall over the tumour classes of a voxel classifier by the nearest class mean of the 4 intensities."""
    brain = _brain(images)
    x = images[:, brain].T / images[:, brain].mean(1)
    y = classes[brain]
    means = np.stack([x[y == k].mean(0) for k in range(4)])
    pred = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), 1)
    return np.mean([(pred[y == k] == k).mean() for k in (1, 2, 3)])


def test_intensities_alone_separate_hard_tumour_classes_much_worse_than_easy_ones():
    easy = [_nearest_mean_recall(*synthesize_full_size_case(seed, SMALL)) for seed in range(3)]
    hard = [_nearest_mean_recall(*synthesize_hard_case(seed, SMALL)) for seed in range(3)]
    assert min(easy) > 0.8 and max(hard) < min(easy) - 0.15


def test_thick_slices_average_along_one_axis_only():
    rng = np.random.default_rng(0)
    image = rng.random((20, 21, 22)).astype(np.float32)
    thick = thick_slices(image, axis=2, thickness=4, offset=1)
    assert thick.shape == image.shape
    assert np.diff(thick, axis=2).std() < 0.5 * np.diff(image, axis=2).std()  # smooth across slices
    assert np.diff(thick, axis=0).std() > 0.5 * np.diff(image, axis=0).std() / 2  # in-plane detail kept


def test_hard_cases_are_deterministic_by_seed():
    a = synthesize_hard_case(5, SMALL)
    b = synthesize_hard_case(5, SMALL)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cli_writes_hard_full_size_cases(tmp_path):
    assert cga(["synth", str(tmp_path), "--full-size", "--difficulty", "hard", "--cases", "1", "--seed", "2"]) == 0
    (source,) = find_cases(tmp_path)
    case = load_case(source)
    assert case.image.shape == (4,) + FULL_SHAPE
    assert not case.classes[~_brain(case.image)].any()


def test_cli_refuses_difficulty_without_full_size(tmp_path, capsys):
    assert cga(["synth", str(tmp_path / "a"), "--difficulty", "hard"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cga synth: error:") and "--full-size" in line
    assert not (tmp_path / "a").exists()
