"""Hard realistic full-size cases (``cga synth --full-size --difficulty hard``).

The same head-shaped brain as ``synth_full_size`` (the ``easy`` cases), with what real scans do
to a segmenter and the easy cases do not:

- **Texture** inside every tissue and tumour class (9 % against 6 %), per sequence.
- **Overlapping levels**: edema's FLAIR level sits next to grey matter's, necrosis's T2 level
  next to CSF's, non-enhancing tumour next to edema.
- **Mimics that are not tumour**: enhancing vessels, choroid plexus in the ventricles and a
  dural rim on T1ce; periventricular white-matter hyperintensities on FLAIR and T2.
- **Acquisition**: every sequence is a 2-D acquisition of 3-6 mm slices along its own axis,
  resampled to 1 mm; its own gamma and scale; a stronger bias field (amplitude 0.18 over 40 voxels against 0.15
  over 60); 2-5 % noise.
- **Tumours** of four kinds: a patchy enhancing rim with non-enhancing gaps around off-centre
  necrosis, solid-enhancing, non-enhancing (no ET), and small-cored; a quarter of the cases are
  multifocal (two or three lesions); the edema reaches into the white matter in fingers and
  spares the cortex; each lesion displaces the anatomy around it (mass effect).

Labels are class indices as ``synth_full_size`` returns them: 1 = necrosis and non-enhancing
tumour (NCR/NET), 2 = edema, 3 = enhancing tumour. Deterministic by seed; about 10 s a case.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .layouts import MODALITIES
from .synth_full_size import (
    CONTRAST_COLUMNS,
    FULL_SHAPE,
    TISSUE_CONTRAST,
    brain_geometry,
    brain_tissues,
    coordinate_grids,
    ellipsoid_distance,
    lobed_distance,
    smooth_field,
    threshold_for,
)

# tissue -> mean level per sequence (CONTRAST_COLUMNS order): the easy table with closer tumour
# levels, plus the mimics and non-enhancing tumour.
HARD_CONTRAST = {
    **TISSUE_CONTRAST,
    "edema": (0.78, 0.52, 0.54, 0.84),  # FLAIR 0.78 against grey matter's 0.68
    "necrosis": (0.46, 0.30, 0.27, 0.95),  # T2 0.95 against CSF's 1.00
    "enhancing": (0.80, 0.58, 1.20, 0.72),  # T1ce 1.2: as bright as the brightest mimic, plexus
    "wmh": (0.80, 0.72, 0.70, 0.74),  # periventricular hyperintensity: edema-like on FLAIR and T2
    "plexus": (0.50, 0.55, 1.15, 0.70),  # choroid plexus: enhances like tumour
    "dura": (0.45, 0.50, 0.92, 0.55),  # dural rim: enhances like tumour
    "non_enhancing": (0.84, 0.46, 0.50, 0.88),  # NET: edema-like, a little darker on T1
}
HARD_CODE = {name: code for code, name in enumerate(HARD_CONTRAST)}
HARD_CLASSES = {"edema": 2, "enhancing": 3, "necrosis": 1, "non_enhancing": 1}
TUMOUR_KINDS = ("rim", "solid", "non_enhancing", "small_core")
KIND_WEIGHTS = (0.45, 0.2, 0.1, 0.25)


def add_mimics(rng: np.random.Generator, tissue, brain_dist) -> None:
    """Write white-matter hyperintensities, choroid plexus and a dural rim into ``tissue`` (in place)."""
    csf = tissue == HARD_CODE["csf"]
    near_ventricle = ndimage.binary_dilation(csf & (brain_dist < 0.6), iterations=3) & ~csf
    patchy = smooth_field(rng, tissue.shape, 4) > 0.3
    tissue[near_ventricle & patchy & (tissue == HARD_CODE["wm"])] = HARD_CODE["wmh"]
    plexus = csf & (brain_dist < 0.5) & (smooth_field(rng, tissue.shape, 3) > 1.0)
    tissue[plexus] = HARD_CODE["plexus"]
    rim = (brain_dist > 0.965) & (brain_dist < 1.0) & (smooth_field(rng, tissue.shape, 10) > -0.3)
    tissue[rim] = HARD_CODE["dura"]


def lesion_centres(rng: np.random.Generator, brain_dist, count: int) -> list:
    """``count`` voxel centres well inside the brain (rejection sampling on the brain distance)."""
    centres, shape = [], np.array(brain_dist.shape)
    while len(centres) < count:
        where = rng.uniform(0.15, 0.85, 3) * shape
        if brain_dist[tuple(where.astype(int))] < 0.7:
            centres.append(where)
    return centres


def displace(tissue, brain, centre, radius: float, strength: float) -> None:
    """Mass effect: push the anatomy around ``centre`` outwards by up to ``strength * radius`` voxels (in place,
    inside the brain; the brain's outline stays)."""
    lo = np.maximum((centre - 4 * radius).astype(int), 0)
    hi = np.minimum((centre + 4 * radius).astype(int) + 1, tissue.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    grids = coordinate_grids(tuple(hi - lo))
    offsets = [g - c for g, c in zip(grids, centre - lo)]
    r = np.sqrt(sum(o**2 for o in offsets)) + 1e-3
    push = strength * radius * np.exp(-((r / (1.5 * radius)) ** 2)) / r
    source = np.stack(np.broadcast_arrays(*[g - o * push for g, o in zip(grids, offsets)]))
    moved = ndimage.map_coordinates(tissue[box], source, order=0, mode="nearest")
    tissue[box] = np.where(brain[box], moved, tissue[box])


def lesion_regions(rng: np.random.Generator, inside, white_matter, radius: float, wt_voxels: int):
    """``(whole tumour, core, necrosis)`` masks of one lesion in its box (centre in the middle); the edema
    spreads into ``white_matter`` in fingers and spares the cortex."""
    grids = coordinate_grids(inside.shape)
    local = np.array(inside.shape) / 2
    fingers = 0.35 * np.abs(smooth_field(rng, inside.shape, 3)) - 0.25 * white_matter
    edema_d = lobed_distance(rng, grids, local, radius) + 0.2 * smooth_field(rng, inside.shape, 6) + fingers
    core_centre = local + rng.normal(0, 0.2 * radius, 3)
    core_d = lobed_distance(rng, grids, core_centre, 0.6 * radius) + 0.15 * smooth_field(rng, inside.shape, 4)
    necrosis_centre = core_centre + rng.normal(0, 0.2 * radius, 3)  # off-centre in the core
    necrosis_d = ellipsoid_distance(grids, necrosis_centre, [0.35 * radius] * 3) + 0.3 * smooth_field(
        rng, inside.shape, 4
    )
    big = 1e6
    wt = inside & (edema_d < threshold_for(np.where(inside, edema_d, big).ravel(), wt_voxels))
    return wt, core_d, necrosis_d, big


NO_TUMOUR = 255


def lesion_labels(rng: np.random.Generator, kind: str, inside, white_matter, radius: float, wt_voxels: int):
    """Tumour tissue codes (``HARD_CODE``) of one lesion's box, ``NO_TUMOUR`` elsewhere, by ``kind``."""
    wt, core_d, necrosis_d, big = lesion_regions(rng, inside, white_matter, radius, wt_voxels)
    core_share = rng.uniform(0.05, 0.15) if kind == "small_core" else rng.uniform(0.25, 0.6)
    tc = wt & (core_d < threshold_for(np.where(wt, core_d, big).ravel(), int(wt.sum() * core_share)))
    labels = np.full(inside.shape, NO_TUMOUR, dtype=np.uint8)
    labels[wt] = HARD_CODE["edema"]
    if kind == "non_enhancing":
        labels[tc] = HARD_CODE["non_enhancing"]
        return labels
    labels[tc] = HARD_CODE["enhancing"]
    gaps = tc & (smooth_field(rng, inside.shape, 3) > (0.9 if kind == "rim" else 1.3))
    labels[gaps] = HARD_CODE["non_enhancing"]
    if kind in ("rim", "small_core"):
        share = rng.uniform(0.2, 0.6)
        necrosis = tc & (necrosis_d < threshold_for(np.where(tc, necrosis_d, big).ravel(), int(tc.sum() * share)))
        labels[necrosis] = HARD_CODE["necrosis"]
    return labels


def place_lesions(rng: np.random.Generator, tissue, brain, brain_dist) -> np.ndarray:
    """Write one to three lesions into ``tissue`` (in place, after displacing the anatomy around each);
    returns the box's class indices (uint8). Whole tumour 0.5-3 % of the brain in all; where lesions
    meet, a core overwrites edema and edema never overwrites a core."""
    total = int(brain.sum() * np.exp(rng.uniform(np.log(0.005), np.log(0.03))))
    count = int(rng.choice([1, 2, 3], p=[0.75, 0.15, 0.1]))
    shares = rng.dirichlet([2.0] * count)
    classes = np.zeros(brain.shape, dtype=np.uint8)
    for centre, share in zip(lesion_centres(rng, brain_dist, count), shares):
        voxels = max(int(total * share), 200)
        radius = (3 * voxels / (4 * np.pi)) ** (1 / 3)
        displace(tissue, brain, centre, radius, strength=rng.uniform(0.2, 0.5))
        lo = np.maximum((centre - 3 * radius).astype(int), 0)
        hi = np.minimum((centre + 3 * radius).astype(int) + 1, brain.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        kind = str(rng.choice(TUMOUR_KINDS, p=KIND_WEIGHTS))
        white_matter = np.isin(tissue[box], [HARD_CODE["wm"], HARD_CODE["wmh"]]).astype(np.float32)
        labels = lesion_labels(rng, kind, brain[box], white_matter, radius, voxels)
        box_classes, box_tissue = classes[box], tissue[box]
        for name, index in HARD_CLASSES.items():
            where = (labels == HARD_CODE[name]) & ((box_classes == 0) if name == "edema" else True)
            box_classes[where] = index
            box_tissue[where] = HARD_CODE[name]
    return classes


def thick_slices(image: np.ndarray, axis: int, thickness: int, offset: int) -> np.ndarray:
    """A 2-D acquisition of ``thickness``-voxel slices along ``axis``, resampled back to 1 voxel (linear)."""
    averaged = ndimage.uniform_filter1d(image, thickness, axis=axis, mode="nearest")
    n = image.shape[axis]
    centres = np.arange(offset % thickness, n, thickness)
    sampled = np.take(averaged, centres, axis=axis)
    position = np.clip(np.interp(np.arange(n), centres, np.arange(len(centres))), 0, len(centres) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(centres) - 1)
    weight = (position - low).astype(np.float32)
    shape = [1] * image.ndim
    shape[axis] = n
    weight = weight.reshape(shape)
    return np.take(sampled, low, axis=axis) * (1 - weight) + np.take(sampled, high, axis=axis) * weight


def render_sequence(rng: np.random.Generator, levels, tissue, brain, bias) -> np.ndarray:
    """One sequence ``(*box)`` float32: textured tissue levels, partial-volume blur, bias, thick slices, noise,
    then its gamma and scale; exactly 0 outside ``brain``, > 0 inside."""
    image = levels[tissue] * (1 + 0.09 * smooth_field(rng, tissue.shape, 3))
    image = ndimage.gaussian_filter(image, 0.7) * bias
    axis = int(rng.choice([0, 1, 2], p=[0.2, 0.2, 0.6]))
    image = thick_slices(image, axis, int(rng.integers(3, 7)), int(rng.integers(0, 6)))
    image += rng.normal(0, rng.uniform(0.02, 0.05), image.shape).astype(np.float32)
    image = np.clip(image, 1e-3, None) ** rng.uniform(0.8, 1.25) * rng.uniform(0.5, 2.0)
    return np.where(brain, np.maximum(image, 1e-3), 0).astype(np.float32)


def render_hard(rng: np.random.Generator, tissue, brain) -> np.ndarray:
    """``(4, *box)`` float32 images in the order of ``CONTRAST_COLUMNS``."""
    contrast = np.array(list(HARD_CONTRAST.values()), dtype=np.float32).T  # (4, tissues)
    contrast = contrast * rng.uniform(0.92, 1.08, contrast.shape).astype(np.float32)
    bias = np.exp(0.18 * smooth_field(rng, tissue.shape, 40))
    return np.stack([render_sequence(rng, contrast[m], tissue, brain, bias) for m in range(4)])


def synthesize_hard_case(seed: int = 0, shape=FULL_SHAPE):
    """One hard case: ``(images (4, *shape) float32 in the order of layouts.MODALITIES, classes (*shape) uint8)``,
    images exactly 0 outside the brain, as ``synth_full_size.synthesize_full_size_case`` returns them."""
    rng = np.random.default_rng(seed)
    centre, radii, box = brain_geometry(rng, shape)
    box_shape = tuple(s.stop - s.start for s in box)
    brain, tissue, brain_dist = brain_tissues(rng, box_shape, centre, radii)
    add_mimics(rng, tissue, brain_dist)
    box_classes = place_lesions(rng, tissue, brain, brain_dist)
    images = np.zeros((4,) + tuple(shape), dtype=np.float32)
    classes = np.zeros(tuple(shape), dtype=np.uint8)
    images[(slice(None),) + box] = render_hard(rng, tissue, brain)[[CONTRAST_COLUMNS.index(m) for m in MODALITIES]]
    classes[box] = box_classes
    return images, classes
