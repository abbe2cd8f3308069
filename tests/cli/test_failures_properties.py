"""Property-based tests over corrupted inputs: each input either gives the reference's
result or raises one of the documented error types (``DataError``/``ValueError``/``TypeError``).

Bounded: few examples each, no deadline (the first kernel call compiles nothing but may be slow).
"""

import gzip
import math
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


# ---- geometry: affines and voxel sizes -----------------------------------------------------------

PIXDIM_OFFSET = 80  # byte offset of pixdim[1:4] (float32) in a NIfTI-1 header
SROW_OFFSET = 280  # byte offset of srow_x, srow_y, srow_z (the sform's rows, 12 float32)
AFFINE_CHANGES = ("none", "none", "none", "tiny shift", "shift", "nan", "inf", "zero axis", "two axes alike")
VOXEL_SIZES = ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.0, 1.0, 1.0), (1.0, -1.0, 1.0),
               (1.0, 1.0, float("nan")), (float("inf"), 1.0, 1.0))  # fmt: skip


def _changed_affine(base: np.ndarray, change: str) -> np.ndarray:
    affine = base.copy()
    if change == "tiny shift":  # float rounding: within geometry.AFFINE_TOLERANCE_MM
        affine[0, 3] += 1e-5
    elif change == "shift":  # misregistered by half a voxel
        affine[1, 3] += 0.5
    elif change in ("nan", "inf"):
        affine[1, 2] = float(change)
    elif change == "zero axis":
        affine[:3, 2] = 0.0
    elif change == "two axes alike":
        affine[:3, 1] = affine[:3, 0]
    return affine


def _usable(affine: np.ndarray, sizes) -> bool:
    """The oracle of one file: finite, non-singular affine and positive finite stored voxel sizes."""
    axes = affine[:3, :3]
    if not np.isfinite(affine).all() or not all(np.isfinite(s) and s > 0 for s in sizes):
        return False
    return abs(np.linalg.det(axes)) > 1e-3 * np.prod(np.linalg.norm(axes, axis=0))


def _write_with_geometry(source, target, affine, sizes) -> None:
    """``source``'s voxels at ``target`` with sform ``affine`` (code 1, no qform) and ``sizes`` as stored pixdim,
    patched in the header's bytes (nibabel refuses to write a NaN affine)."""
    image = nib.Nifti1Image(np.asanyarray(nib.load(source).dataobj), np.eye(4))
    image.header.set_sform(np.eye(4), code=1)
    image.header.set_qform(None, code=0)
    nib.save(image, target)
    raw = bytearray(gzip.decompress(target.read_bytes()))
    struct.pack_into("<fff", raw, PIXDIM_OFFSET, *sizes)
    struct.pack_into("<12f", raw, SROW_OFFSET, *np.asarray(affine[:3], dtype=np.float32).ravel())
    target.write_bytes(gzip.compress(bytes(raw)))


@SETTINGS
@given(data=st.data())
def test_random_affines_and_voxel_sizes_load_or_raise_data_error(case_dir, tmp_path_factory, data):
    """Each file of a case (4 sequences, segmentation) gets a drawn affine change and stored voxel size: the case
    loads iff every affine is finite and non-singular, every voxel size positive and finite, and all affines
    agree within 1e-3; otherwise ``load_case`` raises ``DataError`` naming one of its files."""
    case = tmp_path_factory.mktemp("geometry") / case_dir.name
    case.mkdir()
    files = sorted(case_dir.iterdir())
    base = nib.load(files[0]).affine.astype(np.float32).astype(np.float64)  # as the header stores it
    drawn = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in files:
            affine = _changed_affine(base, data.draw(st.sampled_from(AFFINE_CHANGES), label=source.name))
            sizes = data.draw(st.sampled_from(VOXEL_SIZES), label=f"{source.name} pixdim")
            _write_with_geometry(source, case / source.name, affine, sizes)
            drawn[source.name] = (affine, sizes)
    usable = all(_usable(a, s) for a, s in drawn.values())
    same_grid = usable and all(np.abs(a - base).max() <= 1e-3 for a, _ in drawn.values())
    if not same_grid:
        with pytest.raises(DataError) as refused:
            load_case(case)
        assert case_dir.name in str(refused.value) and "\n" not in str(refused.value)
        return
    loaded = load_case(case)
    assert loaded.image.shape[1:] == (8, 7, 6) and loaded.classes.shape == (8, 7, 6)


# ---- flag values -----------------------------------------------------------------------------------

ODD_NUMBERS = (0, 1, 2, -1, 0.5, 1.0, 0.999, 1e-3, 1e6, -1e-9, float("nan"), float("inf"), float("-inf"), True)
TRAIN_FLAGS = {  # TrainConfig field -> (flag, accepted range as a predicate)
    "lr": ("--lr", lambda v: v > 0),
    "weight_decay": ("--weight-decay", lambda v: v >= 0),
    "foreground_share": ("--foreground-share", lambda v: 0 <= v <= 1),
    "val_fraction": ("--val-fraction", lambda v: 0 <= v < 1),
    "sequence_dropout": ("--sequence-dropout", lambda v: 0 <= v < 1),
}
WHOLE_FLAGS = {"epochs": ("--epochs", 1), "batch_size": ("--batch-size", 1), "val_every": ("--val-every", 1),
               "seed": ("--seed", 0), "workers": ("--workers", 0)}  # fmt: skip


def _real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


@SETTINGS
@given(data=st.data())
def test_random_training_flag_values_pass_or_are_refused_naming_the_flag(data):
    """``TrainConfig.check`` accepts exactly the values in each flag's range; a refusal names the flag of a value
    out of range (the first one checked may be any of them)."""
    from cga_model.training.train_config import TrainConfig

    values = {name: data.draw(st.sampled_from(ODD_NUMBERS), label=name) for name in TRAIN_FLAGS}
    values |= {name: data.draw(st.sampled_from((-1, 0, 1, 3, 1.5, True)), label=name) for name in WHOLE_FLAGS}
    crop = tuple(data.draw(st.lists(st.sampled_from((-8, 0, 7, 8, 9, 16, 20, 24)), min_size=3, max_size=3)))
    wrong = {flag for name, (flag, fits) in TRAIN_FLAGS.items() if not (_real(values[name]) and fits(values[name]))}
    wrong |= {
        flag
        for name, (flag, least) in WHOLE_FLAGS.items()
        if isinstance(values[name], bool) or not isinstance(values[name], int) or values[name] < least
    }
    if not all(c > 0 and c % 8 == 0 for c in crop):
        wrong.add("--crop")
    config = TrainConfig(data="d", out="o", crop=crop, **values)
    if not wrong:
        config.check()
        return
    with pytest.raises(ValueError) as refused:
        config.check()
    assert str(refused.value).split(" ")[0] in wrong, (str(refused.value), wrong)


@SETTINGS
@given(
    roi=st.lists(st.sampled_from((-16, 0, 1, 8, 9, 12, 16, 128)), min_size=3, max_size=3),
    overlap=st.sampled_from((-0.1, 0.0, 0.25, 0.5, 0.99, 1.0, 2.0, float("nan"), float("inf"))),
)
def test_random_predict_window_flags_pass_or_are_refused(roi, overlap):
    """``cga predict``'s ``--roi`` (three positive multiples of 8) and ``--overlap`` (in [0, 1)) before any work."""
    from argparse import Namespace

    from cga_model.cli_failures import check_arguments

    args = Namespace(command="predict", roi=roi, overlap=overlap, out=None, device="cpu")
    roi_ok = all(r > 0 and r % 8 == 0 for r in roi)
    if roi_ok and 0 <= overlap < 1:
        check_arguments(args)
        return
    with pytest.raises(ValueError, match="--overlap|--roi"):
        check_arguments(args)
