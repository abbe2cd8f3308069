"""Realistic full-size synthetic cases (``cga synth --full-size``): sizes, proportions, nesting, files."""

import numpy as np
import pytest

from cga_model.cli import main as cga
from cga_model.data.cases import load_case
from cga_model.data.layouts import find_cases
from cga_model.data.synth import synthesize_cohort
from cga_model.data.synth_full_size import FULL_SHAPE, synthesize_full_size_case


def _check_case(images, classes, shape):
    assert images.shape == (4,) + tuple(shape) and classes.shape == tuple(shape)
    brain = np.any(images != 0, axis=0)
    assert np.all(images[:, brain] > 0)  # inside the brain every modality is positive: the brain mask is exact
    assert not classes[~brain].any()  # no tumour outside the brain
    share = brain.mean()
    assert 0.15 <= share <= 0.22  # 1.3-2.0 M voxels of a 240x240x155 grid
    whole = classes > 0
    assert 0.004 <= whole.sum() / brain.sum() <= 0.031
    core, enhancing = np.isin(classes, (1, 3)), classes == 3
    assert enhancing.any() and (classes == 1).any() and (classes == 2).any()
    assert whole.sum() > core.sum() > enhancing.sum()
    return brain


def test_full_size_case_has_the_proportions_of_a_brats_scan():
    images, classes = synthesize_full_size_case(seed=3)
    brain = _check_case(images, classes, FULL_SHAPE)
    assert 1.5e6 <= brain.sum() <= 1.9e6
    means = [[images[m][classes == k].mean() for k in range(4)] for m in range(4)]
    assert len({tuple(np.round(row, 2)) for row in means}) == 4  # four distinct contrasts


@pytest.mark.parametrize("seed", range(4))
def test_smaller_realistic_grids_keep_the_proportions(seed):
    _check_case(*synthesize_full_size_case(seed=seed, shape=(96, 96, 64)), (96, 96, 64))


def test_tumours_vary_in_place_and_size():
    centres, sizes = [], []
    for seed in range(4):
        _, classes = synthesize_full_size_case(seed=seed, shape=(96, 96, 64))
        centres.append(np.argwhere(classes > 0).mean(0))
        sizes.append(int((classes > 0).sum()))
    assert np.ptp(np.array(centres), axis=0).max() > 10 and max(sizes) > 1.5 * min(sizes)


def test_realistic_cohort_writes_readable_brats_cases(tmp_path):
    ids = synthesize_cohort(tmp_path / "ok", 2, seed=5, shape=(96, 96, 64), difficulty="easy", progress=False)
    cases = find_cases(tmp_path / "ok")
    assert [c.case_id for c in cases] == ids and cases[0].layout == "brats2021"
    for source in cases:
        case = load_case(source)
        _check_case(case.image, case.classes, (96, 96, 64))
    with pytest.raises(ValueError, match="resection cavity"):
        synthesize_cohort(tmp_path / "rc", 1, shape=(96, 96, 64), layout="brats2024", difficulty="easy", progress=False)


def test_cli_full_size_writes_brats_cases(tmp_path):
    assert cga(["synth", str(tmp_path), "--full-size", "--cases", "1", "--seed", "4"]) == 0
    (source,) = find_cases(tmp_path)
    case = load_case(source)
    assert case.image.shape == (4,) + FULL_SHAPE and case.layout == "brats2021"
    _check_case(case.image, case.classes, FULL_SHAPE)


def test_cli_refuses_full_size_with_a_shape_or_resection_cavities(tmp_path, capsys):
    assert cga(["synth", str(tmp_path / "a"), "--full-size", "--shape", "64", "64", "48"]) == 2
    assert cga(["synth", str(tmp_path / "b"), "--full-size", "--layout", "brats2024"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("cga synth: error:") and "--shape" in err[0]
    assert err[1].startswith("cga synth: error:") and "brats2024" in err[1]
