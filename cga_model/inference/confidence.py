"""Confidence distribution of predictions (paper Fig. 8): the share of voxel probabilities per bin.

For a region of the cohort's label scheme (``LabelScheme.regions``: ET, TC, WT and RC for the GLI
family, PED's own ET, TC, WT, GTV for MEN-RT) a voxel's probability is the sum of its classes'
softmax probabilities. The bins are the paper's: ``[0, 0.1]``, ``(0.1, 0.5]``, ``(0.5, 0.9]``,
``(0.9, 1.0]``. Shares pool the voxels of every case (as the paper counts over its
cross-validation predictions), inside the brain (voxels non-zero in any sequence) when the case
images are given, else over every voxel of the probability maps.

Probabilities come from ``cga predict --probs`` files (``<ID>_prob.nii.gz``, ``(X, Y, Z, K)``)
or are computed here by sliding-window prediction with a checkpoint or ``.onnx`` model of any number
of input sequences (nothing written but the result). Which classes the K channels are comes from the
layout: the model's training layout for a model, the input's (``--layout``, else detected) for
probability maps, else the cohort code of their case IDs. ``cga confidence`` writes ``confidence.csv``
and ``confidence.png`` (models side by side) under the output rule of every writing command
(``file_safety.check_output``: nothing replaced without ``--overwrite``, never inside an input, atomic).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..data.cases import load_case, normalize, pad_to_multiple
from ..data.cohorts import COHORT_LAYOUTS, folder_cohort
from ..data.errors import DataError
from ..data.file_safety import check_output
from ..data.labels import LabelScheme
from ..data.layouts import find_cases, get_layout
from ..data.nifti import load_nifti, read_array
from ..evaluation.plots import pyplot, save_png
from ..evaluation.tables import write_csv
from ..nn.checkpoint import check_model_fits, model_channel_order, trained_layout
from ..nn.config import SIZE_MULTIPLE

EDGES = (0.0, 0.1, 0.5, 0.9, 1.0)
BINS = tuple(f"[{a}, {b}]" if a == 0 else f"({a}, {b}]" for a, b in zip(EDGES[:-1], EDGES[1:]))
PROB_SUFFIX = "_prob.nii.gz"
UNCODED_LAYOUTS = ("brats2021", "brats2024")  # case IDs without a cohort code: the GLI family's classes (+ RC)


def scheme_regions(scheme: LabelScheme, num_classes: int) -> dict:
    """The regions of ``scheme`` (name -> class indices) that the first ``num_classes`` classes can express."""
    return {r: c for r, c in scheme.regions.items() if max(c) < num_classes}


def region_bin_counts(probs: np.ndarray, regions: dict, brain: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``probs (K, *S)`` class probabilities -> ``{region: voxel counts per bin (4,)}`` for ``regions``
    (name -> class indices, e.g. ``scheme_regions(scheme, K)``); ``brain (*S)`` bool restricts the voxels."""
    counts = {}
    for region, classes in regions.items():
        if max(classes) >= probs.shape[0]:
            raise DataError(f"region {region} needs class {max(classes)}, but the maps have {probs.shape[0]} classes")
        p = probs[list(classes)].sum(0)
        p = p[brain] if brain is not None else p.ravel()
        edges = np.asarray(EDGES[1:-1], dtype=p.dtype)  # in the maps' precision: a stored 0.1 belongs to [0, 0.1]
        index = np.searchsorted(edges, np.clip(p, 0.0, 1.0), side="left")  # p <= 0.1 -> bin 0, ...
        counts[region] = np.bincount(index, minlength=len(BINS)).astype(np.int64)
    return counts


def add_counts(total: dict, counts: dict) -> dict:
    """Per-region sum of two ``region_bin_counts`` results."""
    return {**total, **{r: total.get(r, 0) + c for r, c in counts.items()}}


def probs_scheme(case_ids, num_classes: int, folder, *, layout: str | None = None) -> LabelScheme:
    """The label scheme whose classes the ``num_classes`` channels of the maps in ``folder`` (of cases
    ``case_ids``) are: ``layout``'s (forced), else the first of the IDs' cohort's layouts (``COHORT_LAYOUTS``;
    IDs without a cohort code: the GLI family's) with at least ``num_classes`` classes (``cga predict`` writes
    a model's classes only in a scheme that gives each the same tissue, so its first classes are the model's)."""
    if layout is not None:
        candidates = (layout,)
    else:
        code = folder_cohort(case_ids, folder)
        candidates = COHORT_LAYOUTS[code] if code else UNCODED_LAYOUTS
    fits = [get_layout(n).scheme for n in candidates if get_layout(n).scheme.num_classes >= num_classes]
    if not fits:
        schemes = "; ".join(f"{n}: {get_layout(n).scheme.describe()}" for n in candidates)
        raise DataError(
            f"{folder}: the probability maps have {num_classes} classes, more than the labels of their cases' "
            f"layout ({schemes}); pass the cases with --input (and --layout), or maps of a model of this cohort"
        )
    return fits[0]


def counts_from_probs_folder(folder, input_path=None, *, layout: str | None = None) -> tuple[dict, int]:
    """Pooled ``region_bin_counts`` of every ``<ID>_prob.nii.gz`` in ``folder`` and the number of cases, over the
    regions of ``probs_scheme`` (``layout`` forced, else the IDs' cohort); inside the brain of the cases under
    ``input_path`` (read in ``layout`` when given) when it is given."""
    files = sorted(Path(folder).glob(f"*{PROB_SUFFIX}"))
    if not files:
        raise DataError(f"no probability maps (<ID>{PROB_SUFFIX}, written by cga predict --probs) in {folder}")
    ids = [p.name[: -len(PROB_SUFFIX)] for p in files]
    cases = {c.case_id: c for c in find_cases(input_path, layout=layout)} if input_path else {}
    total = {}
    for path, case_id in zip(files, ids):
        if input_path and case_id not in cases:
            raise DataError(f"{path.name}: no case {case_id} under --input {input_path}")
        probs = np.moveaxis(read_array(load_nifti(path), path), -1, 0)
        regions = scheme_regions(probs_scheme(ids, probs.shape[0], folder, layout=layout), probs.shape[0])
        brain = np.any(load_case(cases[case_id], with_labels=False).image != 0, axis=0) if cases else None
        if brain is not None and brain.shape != probs.shape[1:]:
            raise DataError(f"{path}: maps of shape {probs.shape[1:]}, but case {case_id} of --input is {brain.shape}")
        total = add_counts(total, region_bin_counts(probs, regions, brain))
    return total, len(files)


def case_probabilities(model, config: dict, source, cases, roi, overlap: float, device) -> Iterator[tuple]:
    """``(case_id, probs (K, X, Y, Z) numpy, brain (X, Y, Z))`` of every case of ``cases`` (``CaseFiles`` of one
    layout that the model fits), fed in the model's channel order (any number of sequences)."""
    from ..nn.sliding_window import predict_probs

    channels = model_channel_order(config, source, cases[0].layout)
    for case_files in cases:
        case = load_case(case_files, with_labels=False)
        brain = np.any(case.image != 0, axis=0)
        image = torch.from_numpy(pad_to_multiple(normalize(case.image[channels]), SIZE_MULTIPLE)).to(device)
        crop = (slice(None),) + tuple(slice(0, s) for s in brain.shape)
        yield case.case_id, predict_probs(model, image, roi, overlap=overlap)[crop].cpu().numpy(), brain


def counts_from_model(
    source, input_path, *, layout=None, roi=(128, 128, 128), overlap=0.5, device="cpu"
) -> tuple[dict, int]:
    """Pooled ``region_bin_counts`` of a checkpoint's (or ``.onnx`` model's) predictions on ``input_path``
    (its training layout preferred, or ``layout``), over the regions of the cases' scheme the model predicts."""
    from .predictor import load_predictor

    model, config = load_predictor(source, device)
    cases = find_cases(input_path, layout=layout, prefer=trained_layout(config))
    check_model_fits(model.num_classes, config, cases[0].layout, source)
    regions = scheme_regions(get_layout(cases[0].layout).scheme, model.num_classes)
    total, count = {}, 0
    for _, probs, brain in case_probabilities(model, config, source, cases, roi, overlap, device):
        total, count = add_counts(total, region_bin_counts(probs, regions, brain)), count + 1
    return total, count


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
    fig, axes = plt.subplots(1, len(regions), figsize=(max(6, 4 * len(regions)), 3.6), squeeze=False)
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
    models: dict,
    out_dir,
    *,
    input_path=None,
    layout=None,
    roi=(128, 128, 128),
    overlap=0.5,
    device="cpu",
    overwrite: bool = False,
) -> tuple[Path, Path, list[dict]]:
    """``models``: ``{name: source}``, a source being a folder of ``<ID>_prob.nii.gz`` or a checkpoint /
    ``.onnx`` file (predicted here on ``input_path``, read in ``layout`` when given). Writes
    ``out_dir/confidence.csv`` and ``.png`` after ``check_output`` (before any work): never inside an input,
    an existing file replaced only with ``overwrite``."""
    if not models:
        raise ValueError("give at least one --model NAME=SOURCE")
    out_dir = Path(out_dir)
    paths = out_dir / "confidence.csv", out_dir / "confidence.png"
    inputs = tuple(models.values()) + ((input_path,) if input_path else ())
    check_output(out_dir, inputs=inputs, overwrite=overwrite, will_write=paths)
    rows = []
    for name, source in models.items():
        if Path(source).is_dir():
            counts, cases = counts_from_probs_folder(source, input_path, layout=layout)
        elif input_path is None:
            raise ValueError(f"--model {name}={source}: a model file is run on cases, give them with --input")
        else:
            counts, cases = counts_from_model(
                source, input_path, layout=layout, roi=roi, overlap=overlap, device=device
            )
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
