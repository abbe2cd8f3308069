"""The geometry check every stage shares: usable affines and voxel sizes, one voxel grid per case."""

import gzip
import shutil
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cga_model.data.cases import check_headers, load_case
from cga_model.data.errors import DataError
from cga_model.data.geometry import check_affine, check_voxel_sizes
from cga_model.data.layouts import find_cases

PIXDIM_OFFSET = 76  # NIfTI-1 header: pixdim[0..7] (float32), the voxel sizes in pixdim[1..3]
SROW_X_OFFSET = 280  # srow_x (4 float32), then srow_y and srow_z: the sform rows


@pytest.fixture
def case(cohort, tmp_path):
    """A fresh copy of the cohort's case: ``(case folder, its CaseFiles)``."""
    src = find_cases(cohort)[0]
    dst = tmp_path / src.case_id
    shutil.copytree(cohort / src.case_id, dst)
    return dst, find_cases(tmp_path)[0]


def _patch(path, offset: int, values) -> None:
    """Write float32 ``values`` at ``offset`` in the header of the ``.nii.gz`` file ``path`` (nibabel refuses to)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into(f"<{len(values)}f", raw, offset, *values)
    path.write_bytes(gzip.compress(bytes(raw)))


def _resave(path, affine) -> None:
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), affine, header=image.header), path)


def _refused(folder, files, match: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel warns about a zero pixdim as it reads it
        for read in (lambda: load_case(folder), lambda: check_headers(files)):
            with pytest.raises(DataError, match=match):
                read()


def test_a_valid_case_loads(case):
    folder, files = case
    check_headers(files)
    assert load_case(folder).image.shape == (4, 24, 24, 16)


def test_a_nan_affine_is_refused_naming_the_file(case):
    folder, files = case
    _patch(files.images[1], SROW_X_OFFSET, [float("nan"), 0.0, 0.0, 0.0])
    _refused(folder, files, rf"{files.images[1].name}: its affine .* holds NaN or inf")


def test_a_singular_affine_is_refused(case):
    folder, files = case
    _patch(files.images[0], SROW_X_OFFSET, [0.0, 0.0, 0.0, -12.0])
    _refused(folder, files, rf"{files.images[0].name}: its affine is singular")


def test_a_zero_voxel_size_is_refused_although_nibabel_reads_it_as_1_mm(case):
    folder, files = case
    _patch(files.images[2], PIXDIM_OFFSET + 4, [0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert nib.load(files.images[2]).header.get_zooms()[0] == 1.0
    _refused(folder, files, rf"{files.images[2].name}: voxel size \[0.0, 1.0, 1.0\] mm")


def test_misregistered_modalities_are_refused(case):
    folder, files = case
    shifted = nib.load(files.images[3]).affine.copy()
    shifted[0, 3] += 2.0
    _resave(files.images[3], shifted)
    _refused(
        folder,
        files,
        rf"{files.images[3].name}: the sequence.s affine differs from the first .*flair.* by up to 2 .*register",
    )


def test_a_segmentation_off_its_images_grid_is_refused(case):
    folder, files = case
    flipped = nib.load(files.seg).affine.copy()
    flipped[0, 0] = -1.0
    _resave(files.seg, flipped)
    _refused(
        folder,
        files,
        rf"{files.seg.name}: the segmentation.s affine differs .*segmentation must lie on its images' voxel grid",
    )


def test_rounding_within_the_tolerance_is_accepted(case):
    folder, files = case
    nudged = nib.load(files.images[3]).affine.copy()
    nudged[1, 3] += 1e-5
    _resave(files.images[3], nudged)
    check_headers(files)
    load_case(folder)


@st.composite
def valid_affines(draw):
    """Rotation (QR of a random matrix) times positive voxel sizes of 0.05-20 mm, any finite shift."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    sizes = draw(arrays(np.float64, 3, elements=st.floats(0.05, 20.0)))
    affine = np.eye(4)
    affine[:3, :3] = rotation * sizes
    affine[:3, 3] = draw(arrays(np.float64, 3, elements=st.floats(-1e4, 1e4)))
    return affine, sizes


@settings(max_examples=200, deadline=None)
@given(valid_affines())
def test_random_valid_affines_and_voxel_sizes_are_accepted(affine_and_sizes):
    affine, sizes = affine_and_sizes
    check_affine(affine, "x.nii.gz")
    check_voxel_sizes(sizes, "x.nii.gz")


@settings(max_examples=200, deadline=None)
@given(valid_affines(), st.integers(0, 11), st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_any_non_finite_affine_entry_is_refused(affine_and_sizes, entry, bad):
    affine, _ = affine_and_sizes
    affine[entry // 4, entry % 4] = bad
    with pytest.raises(DataError, match="holds NaN or inf"):
        check_affine(affine, "x.nii.gz")


@settings(max_examples=200, deadline=None)
@given(valid_affines(), st.integers(0, 2), st.integers(0, 2))
def test_a_zero_or_repeated_axis_is_refused(affine_and_sizes, axis, other):
    affine, _ = affine_and_sizes
    affine[:3, axis] = 0.0 if axis == other else affine[:3, other] * 2.5
    with pytest.raises(DataError, match="singular"):
        check_affine(affine, "x.nii.gz")


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float64, 3, elements=st.floats(0.05, 20.0)),
    st.integers(0, 2),
    st.sampled_from([0.0, -1.0, float("nan"), float("inf")]),
)
def test_any_zero_negative_or_non_finite_voxel_size_is_refused(sizes, axis, bad):
    sizes[axis] = bad
    with pytest.raises(DataError, match="zero, negative or not finite"):
        check_voxel_sizes(sizes, "x.nii.gz")
