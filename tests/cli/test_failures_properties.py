"""Property-based tests over corrupted inputs: each input either gives the reference's
result or raises one of the documented error types (``DataError``/``ValueError``/``TypeError``).

Bounded: few examples each, no deadline (the first kernel call compiles nothing but may be slow).
"""

import gzip
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cga_kernels as ck
from cga_kernels import reference
from cga_model.data.cases import load_case
from cga_model.data.errors import DataError
from cga_model.data.layouts import LAYOUTS
from cga_model.data.synth import synthesize_cohort

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
SCHEME = LAYOUTS["brats2021"].scheme
NIFTI_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64)
LABEL_DTYPES = (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64)
SCL_OFFSET = 112  # byte offset of scl_slope (then scl_inter) in a NIfTI-1 header
ODD_VALUES = (3, 5, 255, 1000, 65540, -1, 0.5, 3.5, -0.5, 1 + 1e-9, 1e30, float("nan"), float("inf"))


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("prop")
    synthesize_cohort(root, cases=1, seed=5, shape=(8, 7, 6), progress=False)
    return next(p for p in root.iterdir() if p.is_dir())


def _values(draw, size: int) -> np.ndarray:
    pool = list(SCHEME.values) + ([draw(st.sampled_from(ODD_VALUES))] if draw(st.booleans()) else [])
    return np.array(draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size)), dtype=np.float64)


@st.composite
def segmentation_headers(draw):
    """A segmentation NIfTI with random dims, datatype, scaling and qform/sform codes."""
    shape = draw(st.sampled_from([(8, 7, 6), (8, 7, 6), (8, 7, 6, 1), (8, 7, 6, 2), (8, 7), (7, 8, 6), (1, 1, 1)]))
    stored = _values(draw, int(np.prod(shape))).reshape(shape)
    dtype = draw(st.sampled_from(NIFTI_DTYPES))
    slope = draw(st.sampled_from([None, 1.0, 2.0, 0.5, 0.0, float("nan")]))
    inter = draw(st.sampled_from([None, 0.0, 1.0, -1.0]))
    codes = draw(st.tuples(st.integers(0, 4), st.integers(0, 4)))
    return shape, stored, dtype, slope, inter, codes


def _write_seg(path, stored, dtype, slope, inter, codes, affine):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    raw = (
        stored
        if info is None
        else np.clip(np.nan_to_num(stored, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
    )
    image = nib.Nifti1Image(raw.astype(dtype), affine)
    image.header.set_qform(affine, code=codes[0])
    image.header.set_sform(affine, code=codes[1])
    nib.save(image, path)
    if slope is not None:  # scl_slope/scl_inter patched in the bytes: nibabel refuses to write 0 or a lone NaN
        raw_bytes = bytearray(gzip.decompress(path.read_bytes()))
        struct.pack_into("<ff", raw_bytes, SCL_OFFSET, slope, float("nan") if inter is None else inter)
        path.write_bytes(gzip.compress(bytes(raw_bytes)))


@SETTINGS
@given(header=segmentation_headers())
def test_random_segmentation_headers_load_exactly_or_raise_data_error(case_dir, tmp_path_factory, header):
    shape, stored, dtype, slope, inter, codes = header
    case = tmp_path_factory.mktemp("case") / case_dir.name
    case.mkdir()
    for f in case_dir.iterdir():
        if "_seg" not in f.name:
            (case / f.name).write_bytes(f.read_bytes())
    seg_path = case / f"{case_dir.name}_seg.nii.gz"
    affine = nib.load(case / f"{case_dir.name}_flair.nii.gz").affine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write_seg(seg_path, stored, dtype, slope, inter, codes, affine)
        try:
            values = np.asanyarray(nib.load(seg_path).dataobj).astype(np.float64)  # what the file means, after scaling
            on_grid = np.allclose(nib.load(seg_path).affine, affine)  # no sform/qform code: nibabel guesses another
        except nib.spatialimages.HeaderDataError:  # e.g. a valid slope with a NaN intercept: unreadable
            values = None
    valid = values is not None and on_grid and shape == (8, 7, 6) and bool(np.isin(values, SCHEME.values).all())
    if not valid:
        with pytest.raises(DataError):
            load_case(case)
        return
    classes = load_case(case).classes
    expected = np.searchsorted(np.array(SCHEME.values), values).astype(np.uint8)
    np.testing.assert_array_equal(classes, expected)


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from(LABEL_DTYPES), size=st.integers(0, 40))
def test_random_label_values_and_dtypes_map_exactly_or_raise(data, dtype, size):
    values = _values(data.draw, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = values.astype(dtype)
    if not np.isin(seg.astype(np.float64), SCHEME.values).all():
        with pytest.raises(ValueError, match="is not in the brats2021 scheme"):
            SCHEME.to_classes(seg)
        return
    classes = SCHEME.to_classes(seg)
    assert classes.dtype == np.uint8 and classes.shape == seg.shape
    np.testing.assert_array_equal(np.asarray(SCHEME.values)[classes], seg.astype(np.float64))


@st.composite
def op_inputs(draw):
    batch, channels, k = draw(st.integers(0, 3)), draw(st.integers(0, 4)), draw(st.integers(1, 5))
    spatial = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    x = torch.randn(batch, channels, *spatial, dtype=dtype)
    low = -1 if draw(st.integers(0, 5)) == 0 else 0  # sometimes a label -1 (invalid without ignore_index)
    labels = torch.randint(low, k, (batch, *spatial))
    return x, labels, k


def _same_outcome(call_ops, call_reference):
    """Both raise the same documented error type, or both return results that match."""
    try:
        expected = call_reference()
    except (ValueError, TypeError) as err:
        with pytest.raises(type(err)):
            call_ops()
        return
    got = call_ops()
    for a, b in zip(
        got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@SETTINGS
@given(inputs=op_inputs())
def test_random_op_shapes_match_the_reference_or_raise(inputs):
    x, labels, k = inputs
    _same_outcome(lambda: ck.prototype_pool(x, labels, k), lambda: reference.prototype_pool(x, labels, k))
    _same_outcome(lambda: ck.intra_class_update(x, labels, k), lambda: reference.intra_class_update(x, labels, k))
    proto = torch.randn(x.shape[0], k, x.shape[1], dtype=x.dtype)
    _same_outcome(lambda: ck.prototype_scatter(proto, labels), lambda: reference.prototype_scatter(proto, labels))


def test_zero_batch_or_channels_is_refused_not_computed():
    """The documented outcome of the shapes the property test draws with B=0 or C=0."""
    with pytest.raises(ValueError, match="B >= 1 and C >= 1"):
        reference.prototype_pool(torch.randn(0, 2, 3), torch.zeros(0, 3, dtype=torch.long), 2)
