"""Synthetic brain-tumour cohorts in any layout of ``layouts.py``, deterministic by seed.

Each case is written in the layout's files (e.g. ``brats2021``: ``<OUT>/<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz``
int16 + ``<ID>_seg.nii.gz`` uint8; ``msd``: ``dataset.json``, ``imagesTr/<ID>.nii.gz`` 4-D,
``labelsTr/<ID>.nii.gz``) with labels in the layout's scheme and a 1 mm affine.
Anatomy: a skull-stripped ellipsoidal brain with white matter, a grey-matter cortex and CSF
ventricles, each with its own contrast per modality, a smooth multiplicative bias field and
Gaussian noise. Tumours: a necrotic core, an enhancing rim (bright in t1ce) and surrounding
edema (bright in flair/t2), with irregular borders, random size and place; a fraction of the
cases have no enhancing tumour (the core is then non-enhancing, class 1). In ``brats2024`` and
``brats-met`` most cases also have a resection cavity (class 4, label 4: dark in T1, bright in T2)
beside the tumour; in ``brats-ped`` that fluid-filled lesion is a cyst (label 3) and the tissues take
PED's labels (1 ET, 2 NETC, 4 ED); ``brats-men-rt`` cases are T1c only, labelled 1 GTV (the tumour
core: necrosis and enhancing tumour). Case IDs carry the layout's cohort code (``BraTS-PED-...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from .file_safety import atomic_write, check_holds_only, check_output
from .labels import CLASS_NAMES, CYST, GTV, LabelScheme
from .layouts import LAYOUTS, MODALITIES, MSD_MODALITY_NAMES, Layout, case_paths, get_layout
from .nifti import save_nifti
from .synth_full_size import CONTRAST_COLUMNS, synthesize_full_size_case
from .synth_hard import synthesize_hard_case

#: ``cga synth --full-size --difficulty``: the realistic generators, by name.
FULL_SIZE_GENERATORS = {"easy": synthesize_full_size_case, "hard": synthesize_hard_case}

# tissue -> intensity per modality, in the order of CONTRAST_COLUMNS
CONTRAST = {
    "wm": (0.55, 0.80, 0.80, 0.45),
    "gm": (0.65, 0.60, 0.62, 0.60),
    "csf": (0.15, 0.20, 0.22, 1.00),
    "edema": (0.95, 0.48, 0.50, 0.90),
    "enhancing": (0.75, 0.55, 1.00, 0.70),
    "necrosis": (0.45, 0.30, 0.22, 0.95),
    "cavity": (0.10, 0.15, 0.18, 1.00),
}
CLASS_TISSUES = {2: "edema", 3: "enhancing", 1: "necrosis", 4: "cavity"}  # class index -> tissue of CONTRAST
#: ``cga synth --shape``: the smallest size per axis, in voxels, from which every case holds a brain with a tumour
#: (measured over thousands of seeds and shapes; at 5 voxels about 1 % of the cases lack the tumour, at 2 most
#: the brain).
MIN_SHAPE = 6
INT16_MAX = 32767  # the voxels are written as int16 (intensity x 1000)


def check_shape(shape) -> None:
    """Refuse (``ValueError``) a ``shape`` that is not three sizes of at least ``MIN_SHAPE`` voxels."""
    shape = tuple(shape)
    if len(shape) != 3 or min(shape) < MIN_SHAPE:
        raise ValueError(
            f"--shape {' '.join(map(str, shape))}: every size must be at least {MIN_SHAPE} voxels, the smallest "
            f"that holds a brain with a tumour; choose a larger shape (e.g. {MIN_SHAPE} {MIN_SHAPE} {MIN_SHAPE})"
        )


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    """A smooth random field of ``shape``, mean 0 and standard deviation 1 (all 0 where it is constant), at any
    ``shape``: a ``sigma`` near the volume's size smooths it to almost its mean, which is removed before scaling."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    field -= field.mean()
    return field / (field.std() + 1e-6)


def _ellipsoid_distance(shape, center, radii) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    return np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)))


def _anatomy(rng, shape) -> tuple:
    """``(brain mask, tissue names (object array), brain centre, brain radii)``."""
    center = np.array(shape) / 2 + rng.uniform(-1.5, 1.5, 3)
    radii = np.array(shape) * rng.uniform(0.40, 0.46, 3)
    wobble = 0.04 * _smooth_noise(rng, shape, 4)
    brain_d = _ellipsoid_distance(shape, center, radii) + wobble
    tissue = np.full(shape, "wm", dtype=object)
    tissue[brain_d > 0.80 + 0.05 * _smooth_noise(rng, shape, 3)] = "gm"
    for side in (-1, 1):
        vc = center + np.array([side * radii[0] * 0.18, 0, 0])
        tissue[_ellipsoid_distance(shape, vc, radii * np.array([0.10, 0.30, 0.18])) < 1.0] = "csf"
    return brain_d < 1.0, tissue, center, radii


def _tumour(rng, shape, brain, center, radii, enhancing: bool) -> tuple:
    """``(classes (*shape) uint8, tumour centre, tumour size)``: edema, enhancing rim and necrotic core (class
    indices)."""
    classes = np.zeros(shape, dtype=np.uint8)
    size = rng.uniform(0.09, 0.17) * min(shape)
    tumour_center = center + rng.uniform(-0.45, 0.45, 3) * radii
    irregular = 0.15 * _smooth_noise(rng, shape, 2.5)
    d = _ellipsoid_distance(shape, tumour_center, size * rng.uniform(0.8, 1.2, 3)) + irregular
    classes[(d < rng.uniform(1.4, 2.0)) & brain] = 2
    if enhancing:
        classes[(d < 1.0) & brain] = 3
        classes[(d < rng.uniform(0.45, 0.7)) & brain] = 1
    else:
        classes[(d < 1.0) & brain] = 1
    return classes, tumour_center, size


def _add_cavity(seed: int, shape, brain, classes, tumour_center, size) -> None:
    """In place: a resection cavity (class 4, CSF-like) beside the tumour, from its own random stream."""
    rng = np.random.default_rng([seed, 4])
    direction = rng.standard_normal(3)
    center = tumour_center + 1.3 * size * direction / np.linalg.norm(direction)
    cavity = (_ellipsoid_distance(shape, center, size * rng.uniform(0.7, 1.0, 3)) < 1.0) & brain
    classes[cavity] = 4


def synthesize_case(shape=(64, 64, 48), seed=0, *, enhancing=True, cavity=False):
    """One case: ``(images (4, *shape) float32 in the order of layouts.MODALITIES, classes (*shape) uint8)``.

    ``classes`` are class indices (``labels.CLASS_NAMES``; a layout's scheme turns them into its
    label values); with ``cavity`` a resection cavity (class 4) lies beside the tumour.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    brain, tissue, center, radii = _anatomy(rng, shape)
    classes, tumour_center, size = _tumour(rng, shape, brain, center, radii, enhancing)
    if cavity:
        _add_cavity(seed, shape, brain, classes, tumour_center, size)
    for k, name in CLASS_TISSUES.items():
        tissue[classes == k] = name
    images = np.zeros((4,) + shape, dtype=np.float32)
    for name, values in CONTRAST.items():
        where = (tissue == name) & brain
        for m in range(4):
            images[m][where] = values[m]
    bias = np.exp(0.12 * _smooth_noise(rng, shape, 12))
    images *= bias[None]
    images += rng.normal(0, 0.03, images.shape).astype(np.float32)
    images[:, ~brain] = 0  # skull-stripped: background exactly 0
    np.clip(images, 0, None, out=images)
    return images[[CONTRAST_COLUMNS.index(m) for m in MODALITIES]], classes


COHORT_IDS = {
    "brats2023": "GLI",
    "brats2024": "GLI",
    "brats-ssa": "SSA",
    "brats-men": "MEN",
    "brats-goat": "GoAT",
    "brats-met": "MET",
    "brats-ped": "PED",
}


def _case_id(layout: str, seed: int, index: int) -> str:
    if layout == "brats-men-rt":
        return f"BraTS-MEN-RT-{seed % 100:02d}{index:02d}-1"
    if layout in COHORT_IDS:
        return f"BraTS-{COHORT_IDS[layout]}-{seed:05d}-{index:03d}"
    return {"brats2021": f"SYN_{seed:04d}_{index:03d}", "msd": f"BRATS_{seed:04d}_{index:03d}"}[layout]


def has_fluid_lesion(scheme: LabelScheme) -> bool:
    """Whether ``scheme`` labels the CSF-like lesion beside the tumour (a resection cavity, or PED's cyst)."""
    return CLASS_NAMES[4] in scheme.tissues or CYST in scheme.tissues


def scheme_classes(classes: np.ndarray, scheme: LabelScheme) -> np.ndarray:
    """``synthesize_case``'s classes (``CLASS_NAMES``; 4: the fluid lesion) as class indices of ``scheme``:
    by tissue (the fluid lesion is PED's cyst), or MEN-RT's GTV = necrosis and enhancing tumour."""
    if GTV in scheme.tissues:
        return np.isin(classes, (1, 3)).astype(np.uint8)
    fluid = CYST if CYST in scheme.tissues else CLASS_NAMES[4]
    tissues = CLASS_NAMES[:4] + (fluid,)
    lookup = np.array([scheme.tissues.index(t) if t in scheme.tissues else 0 for t in tissues], dtype=np.uint8)
    return lookup[classes]


def _int16_voxels(images: np.ndarray, case_id: str) -> np.ndarray:
    """``images`` (any shape) x1000 as int16; a value that is not finite or beyond int16, which the cast would
    turn into a wrong intensity, raises ``RuntimeError`` (a bug of the generator) before anything is written."""
    scaled = np.round(images * 1000)
    largest = float(np.abs(scaled).max(initial=0.0))
    if not np.isfinite(largest) or largest > INT16_MAX:
        raise RuntimeError(
            f"synthetic case {case_id}: an intensity of {largest / 1000} does not fit the int16 files (a bug in "
            "the generator, nothing of the case was written); please report it with the command line"
        )
    return scaled.astype(np.int16)


def write_case(root: Path, layout: Layout, case_id: str, images: np.ndarray, classes: np.ndarray, affine) -> None:
    """Write one case into ``root`` in ``layout``: its sequences of ``images (4, ...)`` (``MODALITIES`` order)
    int16 (x1000), ``classes`` (``CLASS_NAMES``) as uint8 labels of the layout's scheme."""
    voxels = _int16_voxels(images, case_id)
    paths, seg_path = case_paths(layout, root, case_id)
    for path in set(paths) | {seg_path}:
        path.parent.mkdir(parents=True, exist_ok=True)
    if layout.is_folder_per_case:
        for path, modality in zip(paths, layout.modalities):
            save_nifti(path, voxels[MODALITIES.index(modality)], affine)
    else:  # one 4-D file, channels in the layout's file order
        order = sorted(range(len(MODALITIES)), key=lambda m: layout.channels[MODALITIES[m]])
        save_nifti(paths[0], np.stack([voxels[m] for m in order], axis=-1), affine)
    save_nifti(seg_path, layout.scheme.to_labels(scheme_classes(classes, layout.scheme)), affine)


def _write_msd_description(root: Path, ids: list) -> None:
    scheme = LAYOUTS["msd"].scheme
    description = {
        "name": "BRATS",
        "description": "synthetic cohort in the layout of the Decathlon's Task01_BrainTumour",
        "tensorImageSize": "4D",
        "modality": {str(i): m for i, m in enumerate(MSD_MODALITY_NAMES)},
        "labels": {str(v): n for v, n in sorted(zip(scheme.values, scheme.names))},
        "numTraining": len(ids),
        "numTest": 0,
        "test": [],
        "training": [{"image": f"./imagesTr/{i}.nii.gz", "label": f"./labelsTr/{i}.nii.gz"} for i in ids],
    }
    atomic_write(root / "dataset.json", lambda tmp: Path(tmp).write_text(json.dumps(description, indent=1)))


def _check_difficulty(difficulty: str | None, layout: str, with_cavity: bool) -> None:
    if difficulty is not None and difficulty not in FULL_SIZE_GENERATORS:
        raise ValueError(f"difficulty must be one of {tuple(FULL_SIZE_GENERATORS)} or None, got {difficulty!r}")
    if difficulty is not None and with_cavity:
        raise ValueError(
            f"realistic (--full-size) synthetic cases have no resection cavity or cyst, which layout {layout} "
            "expects: choose another --layout"
        )


def synthesize_cohort(
    out,
    cases: int = 10,
    *,
    seed: int = 0,
    shape=(64, 64, 48),
    no_enhancing_fraction: float = 0.2,
    layout: str = "brats2021",
    cavity_fraction: float = 0.75,
    difficulty: str | None = None,
    progress: bool = True,
):
    """Write ``cases`` synthetic cases under ``out`` in ``layout`` (``layouts.LAYOUTS``); returns their IDs.

    Deterministic by ``seed`` (the same anatomy and tumours in every layout). ``shape``: three sizes of at least
    ``MIN_SHAPE`` voxels (``check_shape``). Layouts with a
    resection-cavity or cyst class (``brats2024``, ``brats-met``, ``brats-ped``) give one to a
    ``cavity_fraction`` of the cases.
    ``difficulty``: ``None`` for the small demo generator, or a key of ``FULL_SIZE_GENERATORS``
    for the anatomy and tumour proportions of real scans (``"easy"``: ``synth_full_size``, every case
    with the three tumour sub-regions; ``"hard"``: ``synth_hard``; at ``shape=FULL_SHAPE``,
    240x240x155, this is ``cga synth --full-size --difficulty``): ``no_enhancing_fraction`` does
    not apply and no case has a resection cavity.
    """
    chosen = get_layout(layout)
    with_cavity = has_fluid_lesion(chosen.scheme)
    _check_difficulty(difficulty, layout, with_cavity)
    check_shape(shape)
    shape = tuple(shape)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -np.array(shape) / 2  # 1 mm voxels, centred
    ids = []
    for i in tqdm(range(cases), desc="synth", disable=not progress):
        case_id = _case_id(layout, seed, i)
        case_seed, enhancing = int(rng.integers(2**31)), bool(rng.random() >= no_enhancing_fraction)
        cavity = with_cavity and np.random.default_rng([seed, i, 4]).random() < cavity_fraction
        if difficulty is not None:
            images, classes = FULL_SIZE_GENERATORS[difficulty](case_seed, shape)
        else:
            images, classes = synthesize_case(shape, case_seed, enhancing=enhancing, cavity=cavity)
        write_case(out, chosen, case_id, images, classes, affine)
        ids.append(case_id)
    if not chosen.is_folder_per_case:
        _write_msd_description(out, ids)
    return ids


def cohort_files(out, layout: str, cases: int, seed: int) -> list:
    """Every file ``synthesize_cohort(out, cases, seed=seed, layout=layout)`` writes."""
    chosen = get_layout(layout)
    files = []
    for i in range(cases):
        paths, seg = case_paths(chosen, Path(out), _case_id(layout, seed, i))
        files += [*dict.fromkeys(paths), seg]
    return files + ([] if chosen.is_folder_per_case else [Path(out) / "dataset.json"])


def check_cohort_out(out, layout: str, cases: int, seed: int, overwrite: bool) -> None:
    """``cga synth``'s output rule (``check_output``): the cases it would replace only with ``overwrite``, and
    never into a folder holding other files (cases of another layout, seed or count), which would mix cohorts."""
    files = cohort_files(out, layout, cases, seed)
    check_output(out, overwrite=overwrite, will_write=files, flag="folder")
    reason = (
        f"a {layout} cohort of {cases} cases with seed {seed} would not write it: writing there would mix cohorts "
        "or layouts; choose a new or empty folder"
    )
    check_holds_only(out, files, flag="folder", reason=reason)
