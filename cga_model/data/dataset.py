"""BraTS data: case folders, reading, normalisation, padding, augmentation, Dataset and loader.

A case folder ``<ID>/`` holds ``<ID>_{flair,t1,t1ce,t2}.nii.gz`` and optionally
``<ID>_seg.nii.gz``. Images become ``(4, X, Y, Z)`` float32 in the released code's modality
order (``layout.MODALITIES``); labels become class indices 0..3 (``cga_model.labels``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .labels import labels_to_classes
from .layout import MODALITIES
from .nifti_io import DataError, load_nifti, read_array


@dataclass
class Case:
    """One loaded case: ``image (4, X, Y, Z)`` float32, ``classes (X, Y, Z)`` uint8 or None, and the
    flair NIfTI (its affine and header are reused for predictions)."""

    case_id: str
    image: np.ndarray
    classes: Optional[np.ndarray]
    reference: object


def find_cases(root) -> list[Path]:
    """Case folders under ``root`` (sorted); ``root`` may itself be one case folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"input folder does not exist: {root}")
    if (root / f"{root.name}_flair.nii.gz").exists():
        return [root]
    cases = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob(f"{p.name}_*.nii.gz")))
    if not cases:
        raise DataError(f"no BraTS case folders (<ID>/<ID>_flair.nii.gz ...) found in {root}")
    return cases


def load_case(folder, with_labels: bool = True) -> Case:
    """Read one case folder, checking every modality is present, same-shaped and finite."""
    folder = Path(folder)
    case_id = folder.name
    paths = [folder / f"{case_id}_{m}.nii.gz" for m in MODALITIES]
    for path in paths:
        if not path.is_file():
            raise DataError(f"case {case_id}: missing modality file {path.name} in {folder}")
    images = [load_nifti(p) for p in paths]
    shape = images[0].shape
    for path, img in zip(paths, images):
        if img.shape != shape or len(img.shape) != 3:
            raise DataError(f"case {case_id}: {path.name} has shape {img.shape}, expected 3-D {shape} like {paths[0].name}")
    stacked = np.empty((4,) + tuple(shape), dtype=np.float32)
    for m, (path, img) in enumerate(zip(paths, images)):
        read_array(img, path, out=stacked[m])
        if not np.isfinite(stacked[m]).all():
            raise DataError(f"case {case_id}: {path.name} contains non-finite intensities")
    classes = None
    seg_path = folder / f"{case_id}_seg.nii.gz"
    if with_labels and seg_path.exists():
        seg_img = load_nifti(seg_path)
        if seg_img.shape != shape:
            raise DataError(f"case {case_id}: {seg_path.name} has shape {seg_img.shape}, expected {shape}")
        try:
            classes = labels_to_classes(read_array(seg_img, seg_path, dtype=np.int16))
        except ValueError as err:
            raise DataError(f"case {case_id}: {seg_path.name}: {err}") from err
    return Case(case_id, stacked, classes, images[0])


def normalize(image: np.ndarray) -> np.ndarray:
    """In place: z-score each modality inside the brain (voxels non-zero in any modality); outside stays 0."""
    brain = np.any(image != 0, axis=0)
    if not brain.any():
        return image
    for channel in image:
        values = channel[brain]
        channel[brain] = (values - values.mean()) / (values.std() + 1e-8)
    return image


def pad_to_multiple(array: np.ndarray, multiple: int, min_size=None) -> np.ndarray:
    """Zero-pad the last three dims at their end to a multiple of ``multiple`` (and at least ``min_size``)."""
    spatial = array.shape[-3:]
    target = [max(-(-s // multiple) * multiple, m) for s, m in zip(spatial, min_size or (0, 0, 0))]
    pads = [(0, 0)] * (array.ndim - 3) + [(0, t - s) for s, t in zip(spatial, target)]
    return array if all(p == (0, 0) for p in pads) else np.pad(array, pads)


def random_crop(image: np.ndarray, classes: np.ndarray, size, *, rng: np.random.Generator):
    """A random ``size`` crop of ``image (C, X, Y, Z)`` and ``classes (X, Y, Z)`` (views, no copy)."""
    starts = [int(rng.integers(0, s - c + 1)) for s, c in zip(classes.shape, size)]
    window = tuple(slice(a, a + c) for a, c in zip(starts, size))
    return image[(slice(None),) + window], classes[window]


def augment(image: np.ndarray, classes: np.ndarray, rng: np.random.Generator):
    """Paper augmentation: flip each axis with p=0.5 (image and labels alike), then per channel
    ``x * U(0.9, 1.1) + U(-0.1, 0.1)`` inside the brain."""
    for axis in range(3):
        if rng.random() < 0.5:
            image, classes = np.flip(image, axis + 1), np.flip(classes, axis)
    brain = np.any(image != 0, axis=0)
    scale = rng.uniform(0.9, 1.1, size=(image.shape[0], 1, 1, 1)).astype(np.float32)
    shift = rng.uniform(-0.1, 0.1, size=(image.shape[0], 1, 1, 1)).astype(np.float32)
    image = np.where(brain[None], image * scale + shift, 0).astype(np.float32)
    return image, np.ascontiguousarray(classes)


class BratsDataset(Dataset):
    """Items ``{"image": (4, X, Y, Z) float32, "labels": (X, Y, Z) int64, "case_id": str}``.

    With ``crop`` a random crop (after padding to at least ``crop``) and, with ``augment``, the
    paper's flips and intensity jitter; without, the whole normalised volume padded to a
    multiple of ``multiple``. Randomness comes from ``torch``'s RNG (seed it for repeatability).
    """

    def __init__(self, case_dirs, *, crop=None, augment: bool = False, multiple: int = 8):
        self.case_dirs = [Path(c) for c in case_dirs]
        self.crop, self.augment, self.multiple = (tuple(crop) if crop else None), augment, multiple

    def __len__(self) -> int:
        return len(self.case_dirs)

    def __getitem__(self, index: int) -> dict:
        case = load_case(self.case_dirs[index])
        if case.classes is None:
            raise DataError(f"case {case.case_id}: no segmentation file {case.case_id}_seg.nii.gz (needed for training)")
        image = normalize(case.image)
        image = pad_to_multiple(image, self.multiple, self.crop)
        classes = pad_to_multiple(case.classes, self.multiple, self.crop)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        if self.crop:
            image, classes = random_crop(image, classes, self.crop, rng=rng)
        if self.augment:
            image, classes = augment(image, classes, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "labels": torch.from_numpy(np.ascontiguousarray(classes)).long(),
            "case_id": case.case_id,
        }


def make_loader(dataset, batch_size: int, *, shuffle: bool, workers: int = 0, sampler=None, seed: int = 0) -> DataLoader:
    """A DataLoader with ``workers`` processes; each worker's numpy/torch RNG follows torch's base seed."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=generator,
        persistent_workers=False,
        drop_last=False,
    )
