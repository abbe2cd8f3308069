"""The preprocessed case cache: contents equal the raw reader's, atomic cases, resume, and bad input."""

import errno
import json
import os
import resource
import shutil
import signal

import nibabel as nib
import numpy as np
import pytest

from cga_model.cli import main as cga
from cga_model.data import cache as cache_module
from cga_model.data import preprocess as preprocess_module
from cga_model.data.cache import CacheError, as_float16, open_cache
from cga_model.data.cases import load_case, normalize
from cga_model.data.loader import CachedCases, RawCases, TrainingCrops, open_cases
from cga_model.data.preprocess import preprocess
from cga_model.data.synth import synthesize_cohort

SHAPE = (32, 28, 20)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    synthesize_cohort(root, cases=3, seed=4, shape=SHAPE, progress=False)
    return root


@pytest.fixture
def cache(raw, tmp_path):
    out = tmp_path / "cache"
    preprocess(raw, out, workers=1, progress=False)
    return out


def _case_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _fail_on_save(monkeypatch, after: int):
    """Make the ``after+1``-th ``np.save`` of the cache writer raise ENOSPC (a full disk)."""
    calls, real_save = {"n": 0}, np.save

    def save(path, array):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, array)

    monkeypatch.setattr(cache_module.np, "save", save)


def test_cached_case_equals_the_raw_reader_and_maps_back(raw, cache):
    cached, from_raw = open_cases(cache), open_cases(raw)
    assert isinstance(cached, CachedCases) and isinstance(from_raw, RawCases)
    assert cached.case_ids == from_raw.case_ids == sorted(p.name for p in raw.iterdir())
    for case_id in cached.case_ids:
        image, classes = cached.validation_case(case_id)
        case = load_case(raw / case_id)
        normalized = normalize(case.image)
        assert image.dtype == np.float32  # stored as float16: the nearest float16 of normalising the whole volume
        np.testing.assert_array_equal(image, normalized.astype(np.float16).astype(np.float32))
        assert np.all(
            np.abs(image - normalized) <= np.abs(normalized) * 2.0**-11 + 2.0**-25
        )  # half an ulp (subnormals: 2^-25)
        np.testing.assert_array_equal(classes, case.classes)
        arrays = cached.arrays(case_id)
        assert (
            isinstance(arrays.image, np.memmap)
            and arrays.image.dtype == np.float16
            and not arrays.image.flags.writeable
        )
        brain = np.argwhere(np.any(case.image != 0, axis=0))
        assert arrays.box == tuple(zip(brain.min(0).tolist(), (brain.max(0) + 1).tolist()))
        assert arrays.original_shape == SHAPE
        for k, x, y, z in arrays.locations:  # every location is a voxel of its class, every class is present
            assert arrays.classes[x, y, z] == k
        assert set(arrays.locations[:, 0]) == set(np.unique(arrays.classes)) - {0}
        reference = open_cache(cache).reference(case_id)
        np.testing.assert_array_equal(reference.affine, case.reference.affine)
        assert reference.header.binaryblock[:40] != b"" and reference.shape == SHAPE
        assert reference.header.get_zooms() == case.reference.header.get_zooms()


def test_properties_record_sources_layout_and_scheme(raw, cache):
    props = open_cache(cache).properties("SYN_0004_000")
    assert props["layout"] == "brats2021" and props["labels"] == [0, 1, 2, 4]
    assert props["modalities"] == ["flair", "t1ce", "t1", "t2"]
    names = sorted(os.path.basename(s["path"]) for s in props["sources"])
    assert names == sorted(f"SYN_0004_000_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2", "seg"))
    for source in props["sources"]:
        assert (
            source["size"] == os.stat(source["path"]).st_size
            and source["mtime_ns"] == os.stat(source["path"]).st_mtime_ns
        )


def test_training_samples_from_cache_and_raw_are_identical(raw, cache):
    ids = open_cases(raw).case_ids
    from_raw, from_cache = (
        TrainingCrops(open_cases(raw), ids, (16, 16, 16)),
        TrainingCrops(open_cases(cache), ids, (16, 16, 16)),
    )
    for key in [(0, True, 1), (1, False, 2), (2, True, 3), (2, False, 4)]:
        a, b = from_raw[key], from_cache[key]
        assert a["case_id"] == b["case_id"]
        assert a["image"].equal(b["image"]) and a["labels"].equal(b["labels"])


def test_rerun_skips_finished_cases(raw, cache):
    before = {c: _case_bytes(cache / c) for c in open_cache(cache).case_ids}
    inode = (cache / "SYN_0004_001").stat().st_ino
    assert preprocess(raw, cache, workers=2, progress=False) == {"cases": 3, "written": 0, "skipped": 3}
    assert {c: _case_bytes(cache / c) for c in before} == before and (cache / "SYN_0004_001").stat().st_ino == inode


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_fails_cleanly_and_the_rerun_finishes(raw, tmp_path, monkeypatch, capsys, workers):
    out = tmp_path / "cache"
    preprocess(raw, out, workers=1, progress=False)
    shutil.rmtree(out / "SYN_0004_001")  # as if a run had stopped after two cases
    shutil.rmtree(out / "SYN_0004_002")
    kept = _case_bytes(out / "SYN_0004_000")
    _fail_on_save(monkeypatch, after=1)  # image.npy of the next case is written, classes.npy hits the full disk
    assert cga(["preprocess", "--data", str(raw), "--out", str(out), "--workers", str(workers)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # (the progress bar aside)
    assert len(errors) == 1 and errors[0].startswith("cga preprocess: error: case SYN_0004_00")
    assert f"cannot write the cache file {out}/SYN_0004_00" in errors[0] and "/classes.npy: " in errors[0]
    assert "No space left on device" in errors[0] and "MiB free on its file system" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["SYN_0004_000", "cache.json"]  # no half case, no partial folder
    assert _case_bytes(out / "SYN_0004_000") == kept
    with pytest.raises(CacheError, match="incomplete: 2 of 3 cases missing"):
        open_cache(out)
    monkeypatch.undo()
    assert preprocess(raw, out, workers=workers, progress=False) == {"cases": 3, "written": 2, "skipped": 1}
    assert len(open_cache(out).case_ids) == 3


def test_a_file_size_limit_names_the_cache_file_and_the_rerun_finishes(raw, tmp_path, capsys):
    """A real failed write (``RLIMIT_FSIZE``, as a full disk fails): one line naming the file the case would hold."""
    out = tmp_path / "cache"
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))  # cache.json fits, a case's image.npy does not
        assert cga(["preprocess", "--data", str(raw), "--out", str(out), "--workers", "1"]) == 2
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga")]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in lines[0], err
    named = f"cannot write the cache file {out}/SYN_0004_000/image.npy: "
    assert lines[0].startswith(f"cga preprocess: error: case SYN_0004_000: {named}")
    assert "MiB free on its file system" in lines[0] and "run cga preprocess again" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["cache.json"]  # no partial case folder, no lock file left
    assert preprocess(raw, out, workers=1, progress=False) == {"cases": 3, "written": 3, "skipped": 0}


def test_interrupted_case_leaves_no_visible_case(raw, tmp_path):
    out = tmp_path / "cache"
    preprocess(raw, out, workers=1, progress=False)
    shutil.rmtree(out / "SYN_0004_002")
    partial = out / ".partial-SYN_0004_002-12345"  # what a killed writer leaves: hidden, never a case
    partial.mkdir()
    (partial / "image.npy").write_bytes(b"half")
    with pytest.raises(CacheError, match="incomplete"):
        open_cache(out)
    preprocess(raw, out, workers=1, progress=False)
    assert not partial.exists() and len(open_cache(out).case_ids) == 3


def test_folder_that_is_not_a_cache(raw, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="not a cga cache"):
        open_cache(folder)
    assert cga(["preprocess", "--data", str(raw), "--out", str(folder), "--rebuild"]) == 2
    assert "not empty and not a cga cache" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    (folder / "cache.json").write_text("{not json")
    with pytest.raises(CacheError, match="not a readable cga cache index"):
        open_cache(folder)


def test_other_version_or_settings_refused_then_rebuilt(raw, cache, capsys):
    index = json.loads((cache / "cache.json").read_text())
    (cache / "cache.json").write_text(json.dumps({**index, "version": 0}))
    with pytest.raises(CacheError, match=r"version 0; this cga reads .* version 2: rebuild it with .*--rebuild"):
        open_cases(cache)
    assert cga(["preprocess", "--data", str(raw), "--out", str(cache)]) == 2
    assert "--rebuild" in capsys.readouterr().err
    (cache / "cache.json").write_text(json.dumps({**index, "settings": {**index["settings"], "dtype": "float32"}}))
    with pytest.raises(CacheError, match="other settings"):
        open_cache(cache)
    assert cga(["preprocess", "--data", str(raw), "--out", str(cache), "--rebuild"]) == 0
    assert len(open_cache(cache).case_ids) == 3


def test_cache_of_another_dataset_is_not_mixed(raw, cache, tmp_path, capsys):
    other = tmp_path / "other"
    synthesize_cohort(other, cases=2, seed=8, shape=SHAPE, progress=False)
    assert cga(["preprocess", "--data", str(other), "--out", str(cache)]) == 2
    assert "was made from" in capsys.readouterr().err
    assert open_cache(cache).case_ids == sorted(p.name for p in raw.iterdir())


def test_changed_source_is_detected(tmp_path, capsys):
    raw = tmp_path / "raw"
    synthesize_cohort(raw, cases=2, seed=4, shape=SHAPE, progress=False)
    out = tmp_path / "cache"
    preprocess(raw, out, workers=1, progress=False)
    changed = raw / "SYN_0004_001" / "SYN_0004_001_t1ce.nii.gz"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size, one second newer
    with pytest.raises(CacheError, match="case SYN_0004_001 changed since it was cached: .*SYN_0004_001_t1ce.nii.gz"):
        open_cases(out)
    assert cga(["preprocess", "--data", str(raw), "--out", str(out)]) == 2
    assert "SYN_0004_001_t1ce.nii.gz" in capsys.readouterr().err
    image = nib.load(changed)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj)[::-1].copy(), image.affine), changed)  # new content
    assert preprocess(raw, out, rebuild=True, workers=1, progress=False)["written"] == 2
    expected = normalize(load_case(raw / "SYN_0004_001").image).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(open_cases(out).validation_case("SYN_0004_001")[0], expected)


def test_cache_of_another_layout_is_not_mixed(tmp_path, capsys):
    raw = tmp_path / "raw"
    synthesize_cohort(raw, cases=2, seed=4, shape=SHAPE, layout="brats2023", progress=False)
    out = tmp_path / "cache"
    preprocess(raw, out, workers=1, progress=False)
    assert open_cache(out).layout == "brats2023" and open_cases(out).layout == "brats2023"
    assert cga(["preprocess", "--data", str(raw), "--out", str(out), "--layout", "brats2024"]) == 2
    assert "2 brats2023 cases), not from" in capsys.readouterr().err


def _killed_writer(source, cache):
    """A worker killed mid-case (the OOM killer, a SIGKILL)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_worker_is_an_error_not_a_hang(raw, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    monkeypatch.setattr(preprocess_module, "write_case", _killed_writer)
    with pytest.raises(CacheError, match="worker process died"):
        preprocess(raw, out, workers=2, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["cache.json"]


def test_a_ctrl_c_while_the_workers_start_is_held_back_not_dropped(raw, tmp_path, monkeypatch, capsys):
    """A SIGINT that arrives while the workers fork (Python would raise it inside an at-fork callback, print a
    traceback and drop it, and the command would go on) waits until they are started, then stops the command."""
    submitted, real_pool = [], preprocess_module.ProcessPoolExecutor

    class Pool(real_pool):
        def submit(self, *args, **kwargs):
            submitted.append(args[1])
            if len(submitted) == 1:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first worker forks
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(preprocess_module, "ProcessPoolExecutor", Pool)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started ignored
    out = tmp_path / "cache"
    assert cga(["preprocess", "--data", str(raw), "--out", str(out), "--workers", "2"]) == 130
    assert len(submitted) == 3  # raised once every case was submitted (the workers started), not amid the fork
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga")]
    assert lines == ["cga preprocess: interrupted"] and "Traceback" not in err, err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".partial")]
    assert signal.signal(signal.SIGINT, previous) is signal.default_int_handler  # Ctrl-C is Python's again


def test_intensity_beyond_float16_is_refused_not_stored_as_inf():
    image = np.zeros((4, 3, 3, 3), dtype=np.float32)
    image[1, 1, 1, 1] = 7e4  # beyond float16's 65504
    with pytest.raises(
        CacheError, match=r"case C1: a normalised intensity of 70000.0 does not fit the cache's float16"
    ):
        as_float16(image, "C1")
    image[1, 1, 1, 1] = 6e4
    assert as_float16(image, "C1").dtype == np.float16


def test_an_ignored_ctrl_c_stays_ignored_while_workers_start():
    """A command started with SIGINT ignored (``cga preprocess ... &`` in a script) keeps ignoring it."""
    from cga_model.data.workers import interrupts_held_back

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_held_back():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
