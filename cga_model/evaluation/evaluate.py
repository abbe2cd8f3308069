"""Score a folder of predictions against BraTS ground truth (``cga evaluate``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.labels import REGIONS
from .metrics import METRICS, case_metrics, summarize
from ..data.nifti_io import DataError, atomic_write, load_nifti, read_array
from .plots import pyplot, save_png

VALID_LABELS = {0, 1, 2, 3, 4}


def _truth_path(gt_dir: Path, case_id: str) -> Path:
    for candidate in (gt_dir / case_id / f"{case_id}_seg.nii.gz", gt_dir / f"{case_id}_seg.nii.gz", gt_dir / f"{case_id}.nii.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"no ground truth for case {case_id} in {gt_dir} (looked for {case_id}/{case_id}_seg.nii.gz)")


def _read_labels(path: Path):
    image = load_nifti(path)
    labels = read_array(image, path, dtype=np.int16)
    found = set(np.unique(labels).tolist())
    if not found <= VALID_LABELS:
        raise DataError(f"{path}: labels must be in {sorted(VALID_LABELS)}, found {sorted(found - VALID_LABELS)}")
    return labels, tuple(float(z) for z in image.header.get_zooms()[:3])


def evaluate_folder(pred_dir, gt_dir, progress: bool = True) -> list[dict]:
    """Per-case metric rows for every ``<ID>.nii.gz`` in ``pred_dir``."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds = sorted(p for p in pred_dir.glob("*.nii.gz") if not p.name.endswith("_prob.nii.gz")) if pred_dir.is_dir() else []
    if not preds:
        raise DataError(f"no predictions (<ID>.nii.gz) found in {pred_dir}")
    rows = []
    for path in tqdm(preds, desc="evaluate", disable=not progress):
        case_id = path.name[: -len(".nii.gz")]
        pred, spacing = _read_labels(path)
        truth, _ = _read_labels(_truth_path(gt_dir, case_id))
        if pred.shape != truth.shape:
            raise DataError(f"case {case_id}: prediction shape {pred.shape} differs from ground truth shape {truth.shape}")
        rows.append({"case_id": case_id, **case_metrics(pred, truth, spacing)})
    return rows


def write_csv(rows: list[dict], path) -> None:
    """Per-case rows, then mean / std / median rows, written atomically."""
    summary = summarize(rows)
    fields = list(rows[0])

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
            for stat, values in summary.items():
                writer.writerow({"case_id": stat, **values})

    atomic_write(path, write)


def format_table(rows: list[dict]) -> str:
    """Mean (std) and median of each metric per region, as a plain-text table."""
    summary = summarize(rows)
    lines = [f"{'region':<7}" + "".join(f"{m:>26}" for m in METRICS)]
    for region in REGIONS:
        cells = [f"{summary['mean'][f'{region}_{m}']:.3f}±{summary['std'][f'{region}_{m}']:.3f} ({summary['median'][f'{region}_{m}']:.3f})" for m in METRICS]
        lines.append(f"{region:<7}" + "".join(f"{c:>26}" for c in cells))
    lines.append(f"{len(rows)} cases; cells: mean±std (median); HD in mm")
    return "\n".join(lines)


def plot_distribution(rows: list[dict], path) -> None:
    """Box plots of per-case Dice and HD95 per region, saved atomically as PNG."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("dice", "hd95")):
        ax.boxplot([[r[f"{reg}_{metric}"] for r in rows] for reg in REGIONS], showmeans=True)
        ax.set_xticks(range(1, len(REGIONS) + 1), list(REGIONS))
        ax.set_title(f"{metric.upper()} per case ({len(rows)} cases)")
        ax.grid(alpha=0.3)
    axes[1].set_ylabel("mm")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
