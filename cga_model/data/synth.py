"""Synthetic BraTS-layout cohorts: brain-like anatomy with gliomas, deterministic by seed.

Each case ``<OUT>/<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz`` (int16) + ``<ID>_seg.nii.gz`` (uint8,
labels 0 background, 1 necrotic core, 2 edema, 4 enhancing tumour) with a 1 mm affine.
Anatomy: a skull-stripped ellipsoidal brain with white matter, a grey-matter cortex and CSF
ventricles, each with its own contrast per modality, a smooth multiplicative bias field and
Gaussian noise. Tumours: a necrotic core, an enhancing rim (bright in t1ce) and surrounding
edema (bright in flair/t2), with irregular borders, random size and place; a fraction of the
cases have no enhancing tumour (the core is then non-enhancing, label 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from .layout import MODALITIES
from .nifti_io import save_nifti

CONTRAST_COLUMNS = ("flair", "t1", "t1ce", "t2")
# tissue -> intensity per modality, in the order of CONTRAST_COLUMNS
CONTRAST = {
    "wm": (0.55, 0.80, 0.80, 0.45),
    "gm": (0.65, 0.60, 0.62, 0.60),
    "csf": (0.15, 0.20, 0.22, 1.00),
    "edema": (0.95, 0.48, 0.50, 0.90),
    "enhancing": (0.75, 0.55, 1.00, 0.70),
    "necrosis": (0.45, 0.30, 0.22, 0.95),
}


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _ellipsoid_distance(shape, center, radii) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    return np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)))


def synthesize_case(shape=(64, 64, 48), seed=0, enhancing=True):
    """One case: ``(images (4, *shape) float32 in the tensor order of layout.MODALITIES, seg (*shape) uint8)``."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    center = np.array(shape) / 2 + rng.uniform(-1.5, 1.5, 3)
    radii = np.array(shape) * rng.uniform(0.40, 0.46, 3)
    wobble = 0.04 * _smooth_noise(rng, shape, 4)
    brain_d = _ellipsoid_distance(shape, center, radii) + wobble
    brain = brain_d < 1.0
    tissue = np.full(shape, "wm", dtype=object)
    tissue[brain_d > 0.80 + 0.05 * _smooth_noise(rng, shape, 3)] = "gm"
    for side in (-1, 1):
        vc = center + np.array([side * radii[0] * 0.18, 0, 0])
        tissue[_ellipsoid_distance(shape, vc, radii * np.array([0.10, 0.30, 0.18])) < 1.0] = "csf"

    seg = np.zeros(shape, dtype=np.uint8)
    size = rng.uniform(0.09, 0.17) * min(shape)
    tumour_center = center + rng.uniform(-0.45, 0.45, 3) * radii
    irregular = 0.15 * _smooth_noise(rng, shape, 2.5)
    d = _ellipsoid_distance(shape, tumour_center, size * rng.uniform(0.8, 1.2, 3)) + irregular
    edema_extent = rng.uniform(1.4, 2.0)
    seg[(d < edema_extent) & brain] = 2
    if enhancing:
        seg[(d < 1.0) & brain] = 4
        seg[(d < rng.uniform(0.45, 0.7)) & brain] = 1
    else:
        seg[(d < 1.0) & brain] = 1
    tissue[seg == 2] = "edema"
    tissue[seg == 4] = "enhancing"
    tissue[seg == 1] = "necrosis"

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
    return images[[CONTRAST_COLUMNS.index(m) for m in MODALITIES]], seg


def synthesize_cohort(out, cases: int = 10, *, seed: int = 0, shape=(64, 64, 48), no_enhancing_fraction: float = 0.2, progress: bool = True):
    """Write ``cases`` synthetic BraTS cases under ``out``; returns their IDs. Deterministic by ``seed``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -np.array(shape) / 2  # 1 mm voxels, centred
    ids = []
    for i in tqdm(range(cases), desc="synth", disable=not progress):
        case_id = f"SYN_{seed:04d}_{i:03d}"
        case_seed, enhancing = int(rng.integers(2**31)), bool(rng.random() >= no_enhancing_fraction)
        images, seg = synthesize_case(shape, case_seed, enhancing)
        folder = out / case_id
        folder.mkdir(exist_ok=True)
        for name, image in zip(MODALITIES, images):
            save_nifti(folder / f"{case_id}_{name}.nii.gz", np.round(image * 1000).astype(np.int16), affine)
        save_nifti(folder / f"{case_id}_seg.nii.gz", seg, affine)
        ids.append(case_id)
    return ids
