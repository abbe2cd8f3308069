"""Lesion-wise metrics of the BraTS 2023+ challenges, as the official ``brats-evaluation`` package computes them.

The package (PyPI ``brats-evaluation`` 0.0.10, on ``panoptica`` 2.1.7, with each cohort's config:
``config_gli.yaml``, ``config_ped.yaml``, ``config_mets.yaml``, ``config_MenPre.yaml``,
``config_GoAT.yaml``, ``config_MenRT.yaml``; ``Layout.config``) evaluates each region and label
group of a case (GLI: ET, TC, WT, RC, NETC, SNFH; PED: ET, TC, WT, NETC, CC, ED; MEN-RT: GTV; ...)
as follows, and so does this module:

1. Lesions are the connected components of the region's mask, 26-connected (``cc3d``'s
   default), in the prediction and in the ground truth separately.
2. A ground-truth lesion and a predicted lesion may be paired when they overlap with Dice
   >= 1e-6; the pairs are chosen by a maximum-weight bipartite matching on Dice (SciPy's
   ``linear_sum_assignment`` on the cost ``1 - Dice``, ``1 + 1e-6`` for pairs not allowed),
   one-to-one. Paired lesions are true positives (``tp``); unpaired predicted lesions are
   false positives (``fp``), unpaired ground-truth lesions false negatives (``fn``).
3. ``lesion_dice`` and ``lesion_hd95`` are the means over the *paired* lesions of their Dice
   and HD95 (the package's ``sq_dsc`` and ``sq_hd95``, reported by its parser as
   ``lesionwise_dsc_mean`` and ``lesionwise_hd95_mean``). HD95 is the 95th percentile
   (linear interpolation) of the surface distances of both directions pooled, in mm from the
   voxel spacing; surfaces are the voxels removed by one 6-connected erosion. (The package
   reads NIfTI through SimpleITK as (Z, Y, X) arrays but keeps the (X, Y, Z) spacing: for
   anisotropic voxels its distances use the spacing of the wrong axes. BraTS and MSD Task01
   are 1 mm isotropic, where both agree; we use the physical spacing.)
4. ``lesion_pq`` is the panoptic quality ``lesion_dice * rq`` (``pq_dsc``), with the
   recognition quality ``rq = tp / (tp + fp / 2 + fn / 2)``: unlike ``lesion_dice`` it
   counts unpaired lesions against the prediction.
5. With no pair (``tp == 0``): no lesion on either side gives NaN for every score (undefined);
   otherwise ``lesion_dice`` and ``lesion_pq`` are 0 and ``lesion_hd95`` is infinite.
6. ``global_dice`` and ``global_hd95`` are the package's ``global_bin_dsc`` and ``global_bin_hd95``:
   Dice and HD95 (as in 3) of the region's whole masks. Without an overlapping voxel they are
   0 and infinite, NaN when both masks are empty. (The package computes its global HD95 without
   the voxel spacing, in voxels; ours is in mm, the same at BraTS's and MSD's 1 mm.)

This differs from the 2023 challenge's own scripts (which dilated ground-truth lesions,
dropped lesions of <= 50 voxels and averaged unmatched lesions in as Dice 0 / HD95 374);
``tests/test_lesionwise.py`` checks our numbers against the package on the same files.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from .metrics import directed_surface_distances, region_mask

LESION_METRICS = (
    "lesion_dice",
    "lesion_hd95",
    "lesion_pq",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
    "global_dice",
    "global_hd95",
)
MATCH_MIN_DICE = 1e-6  # panoptica's matching_threshold in config_gli.yaml
UNPAIRED_COST = 1.0 + 1e-6  # panoptica's cost of a pair below the threshold
NEIGHBOURS_26 = np.ones((3, 3, 3), dtype=bool)


def lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``(labels (X, Y, Z) int32, n)``: the 26-connected lesions of a boolean mask, numbered 1..n in the
    order the package meets them (it reads NIfTI through SimpleITK as (Z, Y, X): X varies fastest),
    so that exact ties in the matching are broken the same way."""
    labels, n = ndimage.label(mask.T, structure=NEIGHBOURS_26)
    return labels.T, int(n)


def pooled_hd95(pred: np.ndarray, truth: np.ndarray, spacing) -> float:
    """95th percentile of the surface distances of both directions pooled (mm); both masks non-empty."""
    distances = np.concatenate(
        [directed_surface_distances(pred, truth, spacing), directed_surface_distances(truth, pred, spacing)]
    )
    return float(np.percentile(distances, 95))


def pair_lesions(truth_labels: np.ndarray, n_truth: int, pred_labels: np.ndarray, n_pred: int):
    """One-to-one pairs ``(truth lesion, predicted lesion, Dice)`` maximising the total Dice (lesion numbers from 1)."""
    both = (truth_labels > 0) & (pred_labels > 0)
    codes, overlap = np.unique(
        truth_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both], return_counts=True
    )
    truth_ids, pred_ids = np.divmod(codes, n_pred + 1)
    truth_size = np.bincount(truth_labels.ravel(), minlength=n_truth + 1).astype(np.float64)
    pred_size = np.bincount(pred_labels.ravel(), minlength=n_pred + 1).astype(np.float64)
    dice = 2.0 * overlap.astype(np.float64) / (truth_size[truth_ids] + pred_size[pred_ids])
    allowed = dice >= MATCH_MIN_DICE
    cost = np.full((n_truth, n_pred), UNPAIRED_COST)
    cost[truth_ids[allowed] - 1, pred_ids[allowed] - 1] = 1.0 - dice[allowed]
    score = np.zeros((n_truth, n_pred))
    score[truth_ids[allowed] - 1, pred_ids[allowed] - 1] = dice[allowed]
    rows, cols = linear_sum_assignment(cost)
    return [(int(r) + 1, int(c) + 1, float(score[r, c])) for r, c in zip(rows, cols) if cost[r, c] < 1.0]


def _pairs_hd95(truth_labels: np.ndarray, pred_labels: np.ndarray, pairs, spacing) -> list[float]:
    """HD95 of each pair, computed inside the union of the two lesions' bounding boxes (distances are unchanged)."""
    truth_boxes, pred_boxes = ndimage.find_objects(truth_labels), ndimage.find_objects(pred_labels)
    values = []
    for truth_id, pred_id, _ in pairs:
        box = tuple(
            slice(min(a.start, b.start), max(a.stop, b.stop))
            for a, b in zip(truth_boxes[truth_id - 1], pred_boxes[pred_id - 1])
        )
        values.append(pooled_hd95(pred_labels[box] == pred_id, truth_labels[box] == truth_id, spacing))
    return values


def global_metrics(pred: np.ndarray, truth: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> dict:
    """``global_dice`` and ``global_hd95`` of one region's boolean masks ``pred`` and ``truth`` (X, Y, Z), as the
    package's ``global_bin_dsc`` / ``global_bin_hd95``: no overlap gives 0 / inf (NaN / NaN when both are empty)."""
    overlap = int(np.count_nonzero(pred & truth))
    if overlap == 0:
        none = not pred.any() and not truth.any()
        return {"global_dice": np.nan if none else 0.0, "global_hd95": np.nan if none else np.inf}
    dice = 2.0 * overlap / (np.count_nonzero(pred) + np.count_nonzero(truth))
    box = ndimage.find_objects((pred | truth).astype(np.uint8))[0]  # distances are unchanged inside the union's box
    return {"global_dice": float(dice), "global_hd95": pooled_hd95(pred[box], truth[box], spacing)}


def region_lesion_metrics(pred: np.ndarray, truth: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> dict:
    """``LESION_METRICS`` of one region: boolean masks ``pred`` and ``truth`` (X, Y, Z), ``spacing`` in mm."""
    return {**_lesion_scores(pred, truth, spacing), **global_metrics(pred, truth, spacing)}


def _lesion_scores(pred: np.ndarray, truth: np.ndarray, spacing) -> dict:
    """The ``lesion_*`` metrics of one region (boolean masks (X, Y, Z))."""
    truth_labels, n_truth = lesions(truth)
    pred_labels, n_pred = lesions(pred)
    pairs = pair_lesions(truth_labels, n_truth, pred_labels, n_pred) if n_truth and n_pred else []
    tp = len(pairs)
    counts = {"lesion_tp": tp, "lesion_fp": n_pred - tp, "lesion_fn": n_truth - tp}
    if tp == 0:
        none = n_truth + n_pred == 0
        return {
            "lesion_dice": np.nan if none else 0.0,
            "lesion_hd95": np.nan if none else np.inf,
            "lesion_pq": np.nan if none else 0.0,
            **counts,
        }
    mean_dice = float(np.mean([d for _, _, d in pairs]))
    hd95 = _pairs_hd95(truth_labels, pred_labels, pairs, spacing)
    rq = tp / (tp + 0.5 * counts["lesion_fp"] + 0.5 * counts["lesion_fn"])
    return {"lesion_dice": mean_dice, "lesion_hd95": float(np.mean(hd95)), "lesion_pq": mean_dice * rq, **counts}


def lesionwise_metrics(pred_classes: np.ndarray, truth_classes: np.ndarray, spacing, regions) -> dict:
    """``{"ET_lesion_dice": ..., ...}`` for class-index volumes (X, Y, Z); ``regions``: names of ``REGIONS``, or
    a mapping name -> class indices (a scheme's ``evaluated``)."""
    row, table = {}, regions if isinstance(regions, dict) else None
    for region in regions:
        pred, truth = region_mask(pred_classes, region, table), region_mask(truth_classes, region, table)
        metrics = region_lesion_metrics(pred, truth, spacing)
        row.update({f"{region}_{name}": value for name, value in metrics.items()})
    return row
