"""Legacy BraTS metrics per region (ET, TC, WT, and RC where the scheme has it): Dice, HD95, HD100, sensitivity,
specificity.

Regions are unions of class indices: the layout's (``LabelScheme.evaluated``: e.g. PED's ET is
class 1), by default the GLI family's ``labels.REGIONS``; callers convert label files to classes
through the layout's scheme first.

Empty-mask rules (the challenge's): prediction and truth both empty -> Dice 1, HD 0;
exactly one empty -> Dice 0, HD 373.13 mm. Hausdorff distances are symmetric surface
distances in mm (voxel spacing from the header): HD100 is the largest surface distance in
either direction, HD95 the larger of the two directed 95th percentiles (MONAI's convention).
Sensitivity is 1 when the truth is empty; specificity is 1 when there are no negatives.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ..data.labels import REGIONS

EMPTY_HD = 373.13
METRICS = ("dice", "hd95", "hd100", "sensitivity", "specificity")


def region_mask(classes: np.ndarray, region: str, regions=None) -> np.ndarray:
    """Boolean mask of a region of a class-index volume; ``regions``: name -> class indices
    (a scheme's ``evaluated``; default ``REGIONS``: ET, TC, WT, RC of the GLI family)."""
    return np.isin(classes, (REGIONS if regions is None else regions)[region])


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, truth).sum() / total)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)


def directed_surface_distances(source: np.ndarray, target: np.ndarray, spacing) -> np.ndarray:
    """Distances (mm) from each surface voxel of ``source`` to the nearest surface voxel of ``target``."""
    to_target = ndimage.distance_transform_edt(~_surface(target), sampling=spacing)
    return to_target[_surface(source)]


def hausdorff(pred: np.ndarray, truth: np.ndarray, spacing=(1.0, 1.0, 1.0), *, percentile: float = 100.0) -> float:
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return EMPTY_HD
    a = directed_surface_distances(pred, truth, spacing)
    b = directed_surface_distances(truth, pred, spacing)
    return float(max(np.percentile(a, percentile), np.percentile(b, percentile)))


def region_metrics(pred: np.ndarray, truth: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> dict:
    """All metrics for one pair of boolean masks."""
    tp = np.logical_and(pred, truth).sum()
    fn = np.logical_and(~pred, truth).sum()
    tn = np.logical_and(~pred, ~truth).sum()
    fp = np.logical_and(pred, ~truth).sum()
    return {
        "dice": dice(pred, truth),
        "hd95": hausdorff(pred, truth, spacing, percentile=95.0),
        "hd100": hausdorff(pred, truth, spacing, percentile=100.0),
        "sensitivity": 1.0 if tp + fn == 0 else float(tp / (tp + fn)),
        "specificity": 1.0 if tn + fp == 0 else float(tn / (tn + fp)),
    }


def case_metrics(
    pred_classes: np.ndarray, truth_classes: np.ndarray, spacing=(1.0, 1.0, 1.0), *, regions=("ET", "TC", "WT")
) -> dict:
    """``{"ET_dice": ..., "ET_hd95": ..., ..., "WT_specificity": ...}`` for two class-index volumes (X, Y, Z);
    ``regions``: names of ``REGIONS``, or a mapping name -> class indices (a scheme's ``evaluated``)."""
    table = regions if isinstance(regions, dict) else None
    if pred_classes.shape != truth_classes.shape:
        raise ValueError(f"prediction shape {pred_classes.shape} differs from ground truth shape {truth_classes.shape}")
    row = {}
    for region in regions:
        for name, value in region_metrics(
            region_mask(pred_classes, region, table), region_mask(truth_classes, region, table), spacing
        ).items():
            row[f"{region}_{name}"] = value
    return row


def summarize(rows: list[dict]) -> dict:
    """``{"mean": {...}, "std": {...}, "median": {...}}`` over the numeric columns of per-case metric rows.

    NaN (a score undefined for a case, e.g. lesion-wise Dice with no lesion on either side) is left
    out; a column that is NaN in every case stays NaN. Infinite values count (their mean is infinite).
    """
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
    values = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in keys}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return {
            stat: {k: float(fn(v)) for k, v in values.items()}
            for stat, fn in (("mean", np.nanmean), ("std", np.nanstd), ("median", np.nanmedian))
        }
