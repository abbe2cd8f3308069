"""Score a folder of predictions against ground truth of any layout (``cga evaluate``): CSV, table, PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.errors import DataError
from ..data.geometry import check_image, check_same_grid
from ..data.layouts import LAYOUTS, find_cases, segmentation_classes
from ..data.nifti import load_nifti, read_array
from . import tables
from .lesionwise import LESION_METRICS, lesionwise_metrics
from .metrics import METRICS, case_metrics, summarize
from .plots import pyplot, save_png

METRIC_SETS = ("legacy", "lesionwise")  # cga evaluate --metrics: legacy per-region metrics, BraTS 2023+ lesion-wise


def _read_classes(path: Path, layout: str):
    """``(class indices (X, Y, Z) uint8, the NIfTI image)`` of a ground-truth label file of ``layout``;
    values are checked as stored, before any cast, and its affine and voxel sizes (they give the spacing)."""
    image = _open_3d(path)
    check_image(image, path)
    return segmentation_classes(read_array(image, path, dtype=None), path, layout), image


def _open_3d(path: Path):
    image = load_nifti(path)
    if len(image.shape) != 3:
        raise DataError(f"{path}: a segmentation must be 3-D, found shape {image.shape}")
    return image


def _read_prediction(path: Path, truth_image, truth_path: Path, layout: str):
    """Class indices ``(X, Y, Z)`` uint8 of the prediction ``path``, on the ground truth's voxel grid and in the
    label values of its layout ``layout`` (a value outside them is the prediction's fault, and said so)."""
    image = _open_3d(path)
    check_same_grid(
        image, path, truth_image, truth_path, what=("prediction", "ground truth"),
        advice="write predictions on the input's grid, with its affine (cga predict does)",
    )  # fmt: skip
    try:
        return LAYOUTS[layout].scheme.to_classes(read_array(image, path, dtype=None))
    except ValueError as err:
        raise DataError(
            f"{path} (a prediction): {err}; predictions must use the label values of the ground truth's layout "
            f"{layout}: predict with --layout {layout}, or convert this prediction's labels"
        ) from err


def _predictions(pred_dir: Path) -> dict:
    """``{case_id: path}`` of the ``<ID>.nii.gz`` predictions in ``pred_dir`` (probability maps left out)."""
    preds = (
        sorted(
            p for p in pred_dir.glob("*.nii.gz") if not p.name.endswith("_prob.nii.gz") and not p.name.startswith(".")
        )
        if pred_dir.is_dir()
        else []
    )
    if not preds:
        raise DataError(f"no predictions (<ID>.nii.gz) found in {pred_dir}")
    return {p.name[: -len(".nii.gz")]: p for p in preds}


def _pairs(pred_dir: Path, gt_dir, layout, allow_missing: bool) -> list:
    """``(case_id, prediction path or None, ground-truth case)`` for every labelled ground-truth case."""
    preds = _predictions(pred_dir)
    truths = {case.case_id: case for case in find_cases(gt_dir, layout=layout)}
    labelled = {case_id: case for case_id, case in truths.items() if case.seg is not None}
    unmatched = sorted(set(preds) - set(labelled))
    if unmatched:
        raise DataError(
            f"no ground-truth segmentation for prediction {', '.join(unmatched[:5])}"
            f"{', ...' if len(unmatched) > 5 else ''} in {gt_dir} ({len(truths)} cases there)"
        )
    missing = sorted(set(labelled) - set(preds))
    if missing and not allow_missing:
        raise DataError(
            f"{len(missing)} ground-truth case{'s' if len(missing) > 1 else ''} without a prediction in {pred_dir}: "
            f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}; predict them, or pass --allow-missing "
            "to score each as an empty (all background) prediction"
        )
    return [(case_id, preds.get(case_id), labelled[case_id]) for case_id in sorted(labelled)]


def evaluate_folder(
    pred_dir, gt_dir, *, layout=None, metric_sets=METRIC_SETS, allow_missing: bool = False, progress: bool = True
) -> list[dict]:
    """Per-case metric rows for every labelled case of ``gt_dir`` against its ``<ID>.nii.gz`` in ``pred_dir``.

    ``gt_dir`` is a dataset folder of any layout (detected from its file names, or ``layout``); the
    predictions use that layout's label scheme (as ``cga predict`` writes them) and the ground
    truth's voxel grid (shape and affine are compared; the spacing is the ground truth's). A case
    without a prediction is refused unless ``allow_missing`` (then scored as all background).
    Each row holds ``case_id``, ``layout`` and, per region and label group the layout's official
    config reports (``LabelScheme.evaluated``: ET, TC, WT, RC, NETC, SNFH for GLI; ET, TC, WT, NETC,
    CC, ED for PED; GTV for MEN-RT), the columns of ``metric_sets``: ``legacy`` (``metrics.METRICS``) and
    ``lesionwise`` (``lesionwise.LESION_METRICS``).
    """
    unknown = sorted(set(metric_sets) - set(METRIC_SETS))
    if unknown or not metric_sets:
        raise ValueError(
            f"--metrics must be a comma-separated subset of {','.join(METRIC_SETS)}, got {','.join(metric_sets)}"
        )
    rows = []
    for case_id, path, truth_case in tqdm(
        _pairs(Path(pred_dir), gt_dir, layout, allow_missing), desc="evaluate", disable=not progress
    ):
        truth, truth_image = _read_classes(truth_case.seg, truth_case.layout)
        if path is None:
            pred = np.zeros_like(truth)
        else:
            pred = _read_prediction(path, truth_image, truth_case.seg, truth_case.layout)
        spacing = tuple(float(z) for z in truth_image.header.get_zooms()[:3])
        regions = LAYOUTS[truth_case.layout].scheme.evaluated
        row = {"case_id": case_id, "layout": truth_case.layout}
        if "legacy" in metric_sets:
            row.update(case_metrics(pred, truth, spacing, regions=regions))
        if "lesionwise" in metric_sets:
            row.update(lesionwise_metrics(pred, truth, spacing, regions))
        rows.append(row)
    return rows


def write_csv(rows: list[dict], path) -> None:
    """Per-case rows, then mean / std / median rows (``tables.write_csv``)."""
    summary = [{"case_id": stat, **values} for stat, values in summarize(rows).items()]
    tables.write_csv(rows + summary, path)


def _regions(rows: list[dict]) -> list:
    """The regions of the rows' columns (``<region>_<metric>``), in column order."""
    suffixes = [f"_{m}" for m in METRICS + LESION_METRICS]
    names = [
        key[: -len(s)]
        for key in rows[0]
        for s in suffixes
        if key.endswith(s) and not any(part in key[: -len(s)] for part in ("_lesion", "_global"))
    ]
    return list(dict.fromkeys(names))


def _cell(summary: dict, key: str) -> str:
    return f"{summary['mean'][key]:.3f}±{summary['std'][key]:.3f} ({summary['median'][key]:.3f})"


def format_table(rows: list[dict]) -> str:
    """Mean ± std (median) of each metric per region, one plain-text table per metric set."""
    summary, regions = summarize(rows), _regions(rows)
    lines = []
    for names in (METRICS, LESION_METRICS):
        names = [m for m in names if f"{regions[0]}_{m}" in rows[0]]
        if names:
            lines.append(f"{'region':<7}" + "".join(f"{m:>26}" for m in names))
            lines += [
                f"{region:<7}" + "".join(f"{_cell(summary, f'{region}_{m}'):>26}" for m in names) for region in regions
            ]
    layouts = ", ".join(sorted({r["layout"] for r in rows}))
    lines.append(
        f"{len(rows)} cases, layout {layouts}; cells: mean±std (median) over cases, NaN left out; HD in mm; "
        "lesion_*: BraTS 2023+ lesion-wise (brats-evaluation: mean over paired lesions, pq = panoptic quality); "
        "global_*: its Dice/HD95 of the whole region"
    )
    return "\n".join(lines)


def plot_distribution(rows: list[dict], path) -> None:
    """Box plots of per-case Dice and HD95 per region (legacy, and lesion-wise when present), titled with the
    layout; PNG, atomic."""
    plt = pyplot()
    regions = _regions(rows)
    panels = [m for m in ("dice", "hd95", "lesion_dice", "lesion_hd95") if f"{regions[0]}_{m}" in rows[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        values = [np.array([r[f"{reg}_{metric}"] for r in rows], dtype=np.float64) for reg in regions]
        ax.boxplot([v[np.isfinite(v)] for v in values], showmeans=True)
        ax.set_xticks(range(1, len(regions) + 1), regions)
        left_out = sum(int((~np.isfinite(v)).sum()) for v in values)
        ax.set_title(f"{metric} per case" + (f" ({left_out} NaN/inf left out)" if left_out else ""), fontsize=9)
        ax.set_ylabel("mm" if "hd" in metric else "")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{len(rows)} cases, layout {', '.join(sorted({r['layout'] for r in rows}))}")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
