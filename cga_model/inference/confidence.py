"""Confidence distribution of predictions (paper Fig. 8): the share of voxel probabilities per bin.

For a region (a union of classes, ``labels.REGIONS``) a voxel's probability is the sum of its
classes' softmax probabilities. The bins are the paper's: ``[0, 0.1]``, ``(0.1, 0.5]``,
``(0.5, 0.9]``, ``(0.9, 1.0]``. Shares pool the voxels of every case (as the paper counts over
its cross-validation predictions), inside the brain (voxels non-zero in any modality) when the
case images are given, else over every voxel of the probability maps.

Probabilities come from ``cga predict --probs`` files (``<ID>_prob.nii.gz``, ``(X, Y, Z, K)``)
or are computed here by sliding-window prediction with a checkpoint (nothing written but the
result). ``cga confidence`` writes ``confidence.csv`` and ``confidence.png`` (models side by side).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..data.cases import load_case, normalize, pad_to_multiple
from ..data.errors import DataError
from ..data.labels import REGIONS
from ..data.layouts import find_cases
from ..data.nifti import load_nifti, read_array
from ..evaluation.plots import pyplot, save_png
from ..evaluation.tables import write_csv
from ..nn.checkpoint import model_channel_order, trained_layout
from ..nn.config import SIZE_MULTIPLE

EDGES = (0.0, 0.1, 0.5, 0.9, 1.0)
BINS = tuple(f"[{a}, {b}]" if a == 0 else f"({a}, {b}]" for a, b in zip(EDGES[:-1], EDGES[1:]))
PROB_SUFFIX = "_prob.nii.gz"


def region_bin_counts(probs: np.ndarray, brain: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``probs (K, *S)`` class probabilities -> ``{region: voxel counts per bin (4,)}`` for the
    regions the K classes can express; ``brain (*S)`` bool restricts the voxels."""
    counts = {}
    for region, classes in REGIONS.items():
        if max(classes) >= probs.shape[0]:
            continue
        p = probs[list(classes)].sum(0)
        p = p[brain] if brain is not None else p.ravel()
        edges = np.asarray(EDGES[1:-1], dtype=p.dtype)  # in the maps' precision: a stored 0.1 belongs to [0, 0.1]
        index = np.searchsorted(edges, np.clip(p, 0.0, 1.0), side="left")  # p <= 0.1 -> bin 0, ...
        counts[region] = np.bincount(index, minlength=len(BINS)).astype(np.int64)
    return counts


def add_counts(total: dict, counts: dict) -> dict:
    """Per-region sum of two ``region_bin_counts`` results."""
    return {r: total.get(r, 0) + c for r, c in counts.items()}


def _brains(input_path) -> dict:
    """``{case_id: brain mask (X, Y, Z)}`` of the cases under ``input_path``."""
    return {c.case_id: np.any(load_case(c, with_labels=False).image != 0, axis=0) for c in find_cases(input_path)}


def counts_from_probs_folder(folder, input_path=None) -> tuple[dict, int]:
    """Pooled ``region_bin_counts`` of every ``<ID>_prob.nii.gz`` in ``folder`` and the number of cases."""
    files = sorted(Path(folder).glob(f"*{PROB_SUFFIX}"))
    if not files:
        raise DataError(f"no probability maps (<ID>{PROB_SUFFIX}, written by cga predict --probs) in {folder}")
    brains = _brains(input_path) if input_path else {}
    total = {}
    for path in files:
        case_id = path.name[: -len(PROB_SUFFIX)]
        if input_path and case_id not in brains:
            raise DataError(f"{path.name}: no case {case_id} under --input {input_path}")
        probs = np.moveaxis(read_array(load_nifti(path), path), -1, 0)
        total = add_counts(total, region_bin_counts(probs, brains.get(case_id)))
    return total, len(files)


def case_probabilities(model, config: dict, source, input_path, roi, overlap: float, device) -> Iterator[tuple]:
    """``(case_id, probs (K, X, Y, Z) numpy, brain (X, Y, Z))`` of every case under ``input_path``."""
    from ..nn.sliding_window import predict_probs

    channels = model_channel_order(config, source)
    for case_files in find_cases(input_path, prefer=trained_layout(config)):
        case = load_case(case_files, with_labels=False)
        brain = np.any(case.image != 0, axis=0)
        image = torch.from_numpy(pad_to_multiple(normalize(case.image[channels]), SIZE_MULTIPLE)).to(device)
        crop = (slice(None),) + tuple(slice(0, s) for s in brain.shape)
        yield case.case_id, predict_probs(model, image, roi, overlap=overlap)[crop].cpu().numpy(), brain


def counts_from_model(source, input_path, *, roi=(128, 128, 128), overlap=0.5, device="cpu") -> tuple[dict, int]:
    """Pooled ``region_bin_counts`` of a checkpoint's (or ``.onnx`` model's) predictions on ``input_path``."""
    from .predictor import load_predictor

    model, config = load_predictor(source, device)
    total, cases = {}, 0
    for _, probs, brain in case_probabilities(model, config, source, input_path, roi, overlap, device):
        total, cases = add_counts(total, region_bin_counts(probs, brain)), cases + 1
    return total, cases


def rows_of(name: str, counts: dict, cases: int) -> list[dict]:
    """CSV rows ``model, region, bin, share, voxels, cases`` (shares of a region sum to 1)."""
    rows = []
    for region, c in counts.items():
        total = int(c.sum())
        for label, n in zip(BINS, c):
            share = n / total if total else float("nan")  # no voxel at all (an empty brain mask): undefined, not 0
            rows.append(
                {"model": name, "region": region, "bin": label, "share": share, "voxels": int(n), "cases": cases}
            )
    return rows


def plot_confidence(
    rows: list[dict], path, title: str = "Confidence distribution of predictions (paper Fig. 8)"
) -> None:
    """Grouped bars: one panel per region, the four bins on x, one bar per model."""
    plt = pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    regions = list(dict.fromkeys(r["region"] for r in rows))
    share = {(r["model"], r["region"], r["bin"]): r["share"] for r in rows}
    fig, axes = plt.subplots(1, len(regions), figsize=(4 * len(regions), 3.6), squeeze=False)
    width = 0.8 / len(models)
    for ax, region in zip(axes[0], regions):
        for i, model in enumerate(models):
            heights = [share.get((model, region, b), 0.0) for b in BINS]
            ax.bar(np.arange(len(BINS)) + (i - (len(models) - 1) / 2) * width, heights, width, label=model)
        ax.set_xticks(np.arange(len(BINS)), BINS, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{region}: probability of the region")
        ax.set_ylabel("share of voxels")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def confidence_report(
    models: dict, out_dir, *, input_path=None, roi=(128, 128, 128), overlap=0.5, device="cpu", overwrite: bool = False
) -> tuple[Path, Path, list[dict]]:
    """``models``: ``{name: source}``, a source being a folder of ``<ID>_prob.nii.gz`` or a checkpoint /
    ``.onnx`` file (predicted here on ``input_path``). Writes ``out_dir/confidence.csv`` and ``.png``."""
    if not models:
        raise ValueError("give at least one --model NAME=SOURCE")
    out_dir = Path(out_dir)
    paths = out_dir / "confidence.csv", out_dir / "confidence.png"
    if not overwrite and any(p.exists() for p in paths):
        raise ValueError(f"{out_dir} already holds confidence.csv/.png; pass --overwrite to replace them")
    rows = []
    for name, source in models.items():
        if Path(source).is_dir():
            counts, cases = counts_from_probs_folder(source, input_path)
        elif input_path is None:
            raise ValueError(f"--model {name}={source}: a model file is run on cases, give them with --input")
        else:
            counts, cases = counts_from_model(source, input_path, roi=roi, overlap=overlap, device=device)
        rows += rows_of(name, counts, cases)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, paths[0])
    plot_confidence(rows, paths[1])
    return paths[0], paths[1], rows


def parse_models(texts: list[str]) -> dict:
    """``["CGA=run/best.pt", "baseline=preds/"]`` -> ``{name: source}`` (``--model NAME=SOURCE`` flags)."""
    models = {}
    for text in texts:
        name, sep, source = text.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"--model {text!r}: expected NAME=SOURCE, e.g. CGA=run/best.pt or baseline=preds/")
        if name in models:
            raise ValueError(f"--model {text!r}: the name {name!r} is given twice")
        models[name] = source
    return models


def format_table(rows: list[dict]) -> str:
    """One line per model and region: the share of each bin."""
    lines = [f"{'model':16s} {'region':6s} " + " ".join(f"{b:>11s}" for b in BINS)]
    for model in dict.fromkeys(r["model"] for r in rows):
        for region in dict.fromkeys(r["region"] for r in rows if r["model"] == model):
            shares = [r["share"] for r in rows if r["model"] == model and r["region"] == region]
            lines.append(f"{model:16s} {region:6s} " + " ".join(f"{s:11.4f}" for s in shares))
    return "\n".join(lines)
