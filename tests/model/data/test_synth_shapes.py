"""The small synthetic generator at small shapes: valid intensities at every shape it draws (no overflow, NaN or inf,
nothing beyond the int16 files), a brain with a tumour from ``MIN_SHAPE`` voxels up, and ``cga synth --shape``
below that refused in one line naming the smallest size."""

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cga_model.cli import main as cga
from cga_model.data.synth import INT16_MAX, MIN_SHAPE, synthesize_case

SETTINGS = settings(max_examples=60, deadline=None)
SEEDS = st.integers(0, 2**31 - 1)


def _valid(images: np.ndarray) -> None:
    assert images.dtype == np.float32 and np.isfinite(images).all()
    assert images.min() >= 0 and images.max() * 1000 < INT16_MAX, images.max()


@SETTINGS
@given(shape=st.tuples(*[st.integers(1, 12)] * 3), seed=SEEDS, enhancing=st.booleans(), cavity=st.booleans())
def test_every_shape_draws_finite_intensities_within_int16(shape, seed, enhancing, cavity):
    images, classes = synthesize_case(shape, seed, enhancing=enhancing, cavity=cavity)
    assert images.shape == (4, *shape) and classes.shape == shape
    _valid(images)
    assert set(np.unique(classes)) <= {0, 1, 2, 3, 4}


@SETTINGS
@given(shape=st.tuples(*[st.sampled_from([MIN_SHAPE, MIN_SHAPE + 1, MIN_SHAPE + 2, 40])] * 3), seed=SEEDS)
def test_from_the_smallest_shape_up_every_case_has_a_brain_and_a_tumour(shape, seed):
    images, classes = synthesize_case(shape, seed)
    _valid(images)
    assert (images[0] > 0).any() and (classes > 0).any()


def test_a_tiny_cohort_is_written_with_valid_values(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert cga(["synth", str(out), "--cases", "4", "--shape", "8", "8", "8"]) == 0, capsys.readouterr().err
    cases = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(cases) == 4
    for case in cases:
        flair = np.asanyarray(nib.load(case / f"{case.name}_flair.nii.gz").dataobj)
        seg = np.asanyarray(nib.load(case / f"{case.name}_seg.nii.gz").dataobj)
        assert flair.dtype == np.int16 and flair.min() == 0 and 0 < flair.max() < 2000, (case, flair.max())
        assert (seg > 0).any()


@pytest.mark.parametrize("shape", [[MIN_SHAPE - 1, 8, 8], [8, 8, 1], [0, 8, 8], [8, -1, 8]])
def test_shapes_below_the_smallest_are_refused_naming_it(tmp_path, shape, capsys):
    out = tmp_path / "s"
    assert cga(["synth", str(out), "--cases", "1", "--shape", *map(str, shape)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"cga synth: error: --shape {' '.join(map(str, shape))}")
    assert f"at least {MIN_SHAPE} voxels" in err and not out.exists(), err


def test_the_smallest_shape_is_accepted(tmp_path, capsys):
    out = tmp_path / "s"
    assert cga(["synth", str(out), "--cases", "2", "--shape", *[str(MIN_SHAPE)] * 3]) == 0, capsys.readouterr().err
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2
