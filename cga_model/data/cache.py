"""The preprocessed case cache of ``cga preprocess``: its format, writer, reader and checks.

Reading a 240x240x155 case from four gzip NIfTI files takes seconds; training cuts one crop out
of it. The cache does the reading, brain cropping and normalisation once, and stores the result
uncompressed, so a training sample reads only its crop of a memory map.

Layout of a cache folder ``CACHE/``::

    cache.json               format name and version, settings, source folder, its layout, case IDs
    <ID>/image.npy           (C, x, y, z) float16 (C: the layout's sequences), cut to its brain box (voxels non-zero in
                             any modality), z-scored per modality inside the brain, 0 outside
                             (float16: half the bytes a crop reads; z-scores keep ~3 significant
                             digits, relative error <= 2^-11; training Dice unchanged, see README)
    <ID>/classes.npy         (x, y, z) uint8 class indices (cases with a segmentation only)
    <ID>/locations.npy       (N, 4) int32 rows (class, x, y, z): a sample of the voxels of each
                             foreground class, in the box's coordinates (for foreground crops)
    <ID>/properties.json     original shape, box, affine, NIfTI header, spacing, source files
                             (path, size, mtime), layout, label scheme, modality order
    .partial-<ID>-<pid>/     a case being written; renamed to ``<ID>/`` when complete

A case folder exists only once complete (written under ``.partial-*`` and renamed), so an
interrupted run leaves no half case visible, and a re-run skips the cases already there.
A cache of another format version or other settings is refused, never mixed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from .brain import brain_box
from .cases import Case, load_case, normalize
from .errors import DataError
from .file_safety import WriteFailed, atomic_write, write_failure
from .layouts import LAYOUTS, MODALITIES, CaseFiles

FORMAT = "cga-case-cache"
FORMAT_VERSION = 2  # 2: images stored as float16 (1: float32)
INDEX_FILE = "cache.json"
PROPERTIES_FILE = "properties.json"
PARTIAL_PREFIX = ".partial-"
LOCATIONS_PER_CLASS = 10_000  # sampled voxel coordinates per foreground class (at least 1 % of the class)
MIN_LOCATION_COVERAGE = 0.01


class CacheError(DataError):
    """A cache folder that cannot be used as asked (the message names it and what to do)."""


def cache_settings() -> dict:
    """The settings a cache is made with; a cache made with others is refused."""
    return {
        "dtype": "float16",
        "normalization": "zscore-per-modality-inside-brain",
        "crop": "brain-bounding-box",
        "modalities": list(MODALITIES),
        "locations_per_class": LOCATIONS_PER_CLASS,
    }


@dataclass
class CaseArrays:
    """One case as training reads it: ``image (C, x, y, z)`` normalised (float16 from a cache, float32 from a
    raw folder) and cut to the brain
    box ``box`` (``((x0, x1), (y0, y1), (z0, z1))`` in the ``original_shape`` grid), ``classes (x, y, z)``
    uint8 or None, ``locations (N, 4)`` int32 ``(class, x, y, z)`` rows. From a cache the arrays are
    read-only memory maps."""

    case_id: str
    image: np.ndarray
    classes: np.ndarray | None
    locations: np.ndarray
    box: tuple
    original_shape: tuple


def read_source_case(source: CaseFiles) -> Case:
    """The one place the cache reads a raw case (any layout of ``layouts.py``)."""
    return load_case(source, with_labels=True)


def class_locations(classes: np.ndarray | None, seed: int) -> np.ndarray:
    """``(N, 4)`` int32 rows ``(class, x, y, z)``: up to ``LOCATIONS_PER_CLASS`` voxels (at least 1 %)
    of each foreground class of ``classes (x, y, z)``, drawn with ``seed``."""
    if classes is None:
        return np.zeros((0, 4), dtype=np.int32)
    rng = np.random.default_rng(seed)
    coords = np.argwhere(classes > 0).astype(np.int32)
    values = classes[tuple(coords.T)]
    rows = []
    for k in np.unique(values):
        mine = coords[values == k]
        keep = max(min(len(mine), LOCATIONS_PER_CLASS), int(np.ceil(len(mine) * MIN_LOCATION_COVERAGE)))
        chosen = mine[np.sort(rng.choice(len(mine), keep, replace=False))]
        rows.append(np.concatenate([np.full((keep, 1), k, dtype=np.int32), chosen], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 4), dtype=np.int32)


def case_arrays(case: Case) -> CaseArrays:
    """Cut ``case`` to its brain box, z-score it inside the brain and sample its class locations
    (what the cache stores, and what training computes on the fly from raw folders)."""
    box = brain_box(np.any(case.image != 0, axis=0))
    window = tuple(slice(a, b) for a, b in box)
    image = normalize(np.ascontiguousarray(case.image[(slice(None),) + window]))
    classes = None if case.classes is None else np.ascontiguousarray(case.classes[window])
    seed = zlib.crc32(case.case_id.encode())
    return CaseArrays(case.case_id, image, classes, class_locations(classes, seed), box, tuple(case.image.shape[1:]))


def _properties(case: Case, arrays: CaseArrays, source: CaseFiles) -> dict:
    header = case.reference.header
    return {
        "case_id": case.case_id,
        "original_shape": list(arrays.original_shape),
        "box": [list(b) for b in arrays.box],
        "affine": np.asarray(case.reference.affine).tolist(),
        "spacing": [float(z) for z in header.get_zooms()[:3]],
        "nifti_header": base64.b64encode(header.binaryblock).decode("ascii"),
        "sources": [
            {"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in source.sources
        ],
        "has_labels": arrays.classes is not None,
        "layout": case.layout,
        "modalities": list(case.modalities),
        "labels": list(LAYOUTS[case.layout].scheme.values),
    }


def stale_sources(properties: dict) -> list[str]:
    """Descriptions of the source files of a cached case that changed (size or mtime) since caching.

    A source that no longer exists is not checked: a cache is complete without its sources.
    """
    changed = []
    for source in properties["sources"]:
        path = Path(source["path"])
        if path.exists():
            stat = path.stat()
            if (stat.st_size, stat.st_mtime_ns) != (source["size"], source["mtime_ns"]):
                changed.append(
                    f"{path} (size {source['size']} -> {stat.st_size}, "
                    f"mtime_ns {source['mtime_ns']} -> {stat.st_mtime_ns})"
                )
    return changed


def as_float16(image: np.ndarray, case_id: str) -> np.ndarray:
    """``image`` (normalised) as float16; ``CacheError`` if a value is not finite or beyond float16's range."""
    largest = float(np.abs(image).max(initial=0.0))
    if not np.isfinite(largest) or largest > float(np.finfo(np.float16).max):
        raise CacheError(
            f"case {case_id}: a normalised intensity of {largest} does not fit the cache's float16 "
            "(a modality that is constant but for a few voxels?): check the case's images"
        )
    return image.astype(np.float16)


def _write_file(partial: Path, final: Path, write) -> None:
    """``write(partial)``; a failure (a full disk, a quota) is a ``WriteFailed`` naming ``final``, the path the file
    gets once its case is complete, and the space left on its file system."""
    try:
        write(partial)
    except OSError as err:
        failed = WriteFailed(f"cannot write the cache file {final}: {write_failure(partial, err)}")
        failed.errno = err.errno
        raise failed from err


def _write_case_files(partial: Path, final: Path, case: Case, arrays: CaseArrays, source: CaseFiles) -> None:
    """The files of a case, into the folder ``partial`` that becomes ``final`` (each failure named as in ``final``)."""
    files = {"image.npy": as_float16(arrays.image, case.case_id), "locations.npy": arrays.locations}
    if arrays.classes is not None:
        files["classes.npy"] = arrays.classes.astype(np.uint8, copy=False)
    for name in ("image.npy", "classes.npy", "locations.npy"):
        if name in files:
            _write_file(partial / name, final / name, lambda path, array=files[name]: np.save(path, array))
    text = json.dumps(_properties(case, arrays, source), indent=1)
    _write_file(partial / PROPERTIES_FILE, final / PROPERTIES_FILE, lambda path: path.write_text(text))


def write_case(source: CaseFiles, cache) -> str:
    """Read the raw case ``source`` (a ``find_cases`` item), preprocess it and write it into ``cache`` atomically;
    returns its ID.

    Written under ``.partial-<ID>-<pid>/`` and renamed to ``<ID>/``; on any failure (e.g. a full
    disk) the partial folder is removed and ``CacheError`` names the case, the file and the cause.
    """
    cache = Path(cache)
    case = read_source_case(source)
    arrays = case_arrays(case)
    partial = cache / f"{PARTIAL_PREFIX}{case.case_id}-{os.getpid()}"
    rerun = "the cases finished before are intact: run cga preprocess again once it is fixed, it skips them"
    try:
        partial.mkdir()
        _write_case_files(partial, cache / case.case_id, case, arrays, source)
        os.rename(partial, cache / case.case_id)
    except WriteFailed as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise CacheError(f"case {case.case_id}: {err}; {rerun}") from err
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise CacheError(
            f"writing case {case.case_id} into {cache} failed: {err}; fix the cause (e.g. free disk space): {rerun}"
        ) from err
    return case.case_id


def read_index(root) -> dict:
    """The checked ``cache.json`` of the cache folder ``root`` (``CacheError`` if ``root`` is not a cache
    of this format version and settings)."""
    root = Path(root)
    path = root / INDEX_FILE
    if not path.is_file():
        raise CacheError(
            f"{root} is not a cga cache (no {INDEX_FILE}); make one with: cga preprocess --data DIR --out {root}"
        )
    try:
        index = json.loads(path.read_text())
        fmt, version, _ = index["format"], index["version"], index["layout"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheError(
            f"{path} is not a readable cga cache index ({err}); rebuild it with cga preprocess --rebuild"
        ) from err
    rebuild = f"cga preprocess --data {index.get('source', 'DIR')} --out {root} --rebuild"
    if fmt != FORMAT or version != FORMAT_VERSION:
        raise CacheError(
            f"{root} holds cache format {fmt!r} version {version}; this cga reads {FORMAT!r} version "
            f"{FORMAT_VERSION}: rebuild it with {rebuild}"
        )
    if index.get("settings") != cache_settings():
        raise CacheError(
            f"{root} was made with other settings ({index.get('settings')}) than this cga uses "
            f"({cache_settings()}): rebuild it with {rebuild}"
        )
    return index


def write_index(root, source, case_ids, layout: str) -> None:
    """Write ``cache.json`` atomically: this format and version, the settings, the source folder, its layout and
    case IDs."""
    index = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "settings": cache_settings(),
        "source": str(Path(source).resolve()),
        "layout": layout,
        "cases": list(case_ids),
    }
    atomic_write(Path(root) / INDEX_FILE, lambda tmp: Path(tmp).write_text(json.dumps(index, indent=1)))


def is_cache(path) -> bool:
    """Whether ``path`` is a cache folder (holds ``cache.json``); its validity is checked by ``open_cache``."""
    return (Path(path) / INDEX_FILE).is_file()


class Cache:
    """A complete, checked cache folder: its case IDs, each case's properties and memory-mapped arrays."""

    def __init__(self, root, index: dict):
        self.root, self.index = Path(root), index

    @property
    def case_ids(self) -> list[str]:
        return list(self.index["cases"])

    @property
    def layout(self) -> str:
        """The layout of the dataset the cache was made from (its label scheme is the cases' ``labels``)."""
        return self.index["layout"]

    def properties(self, case_id: str) -> dict:
        return json.loads((self.root / case_id / PROPERTIES_FILE).read_text())

    def arrays(self, case_id: str, properties: dict | None = None) -> CaseArrays:
        """The case's arrays as read-only memory maps: a crop of them reads only its own pages."""
        props = properties or self.properties(case_id)
        folder = self.root / case_id
        classes = np.load(folder / "classes.npy", mmap_mode="r") if props["has_labels"] else None
        return CaseArrays(
            case_id,
            np.load(folder / "image.npy", mmap_mode="r"),
            classes,
            np.load(folder / "locations.npy"),
            tuple(tuple(b) for b in props["box"]),
            tuple(props["original_shape"]),
        )

    def reference(self, case_id: str) -> nib.Nifti1Image:
        """An empty NIfTI image with the case's original shape, affine and header (for predictions)."""
        props = self.properties(case_id)
        header = nib.Nifti1Header(base64.b64decode(props["nifti_header"]))
        return nib.Nifti1Image(
            np.zeros(props["original_shape"], dtype=np.uint8), np.asarray(props["affine"]), header=header
        )


def uncrop(array: np.ndarray, box, original_shape) -> np.ndarray:
    """``array (..., x, y, z)`` cut to ``box`` placed back into zeros of ``(..., *original_shape)``."""
    full = np.zeros(array.shape[:-3] + tuple(original_shape), dtype=array.dtype)
    full[(Ellipsis,) + tuple(slice(a, b) for a, b in box)] = array
    return full


def open_cache(root, check_sources: bool = True) -> Cache:
    """Open and check a cache folder: format, version, settings, every case complete and, with
    ``check_sources``, no source file changed since it was cached (``CacheError`` otherwise)."""
    root = Path(root)
    index = read_index(root)
    missing = [c for c in index["cases"] if not (root / c / PROPERTIES_FILE).is_file()]
    if missing:
        raise CacheError(
            f"cache {root} is incomplete: {len(missing)} of {len(index['cases'])} cases missing "
            f"(e.g. {missing[0]}); finish it with cga preprocess --data {index['source']} --out {root}"
        )
    cache = Cache(root, index)
    if check_sources:
        for case_id in cache.case_ids:
            changed = stale_sources(cache.properties(case_id))
            if changed:
                raise CacheError(
                    f"cache {root}: case {case_id} changed since it was cached: {changed[0]}; rebuild it with "
                    f"cga preprocess --data {index['source']} --out {root} --rebuild"
                )
    return cache
