"""Look inside a prediction (paper Figs. 6 and 7): the attention maps and the features the update changes.

For any 3-D model holding a ``cga_kernels.IntraClassUpdate`` (the CGA U-Net's SAM, or a network
wrapped by ``cga_model.nn.dropin.CategoryGuidedAttention``), one forward pass over a window
around the tumour is observed through a forward hook on that module, which sees the features
before the update, the attention logits driving it, and the features after it.

- ``<ID>_attention.png`` (Fig. 7): per class (named as in the label scheme of the model's training
  layout: GLI, PED, MEN-RT, ...), the attention map (softmax over classes of the SAM's logits),
  up-sampled trilinearly to the image and overlaid on FLAIR (or the first sequence a case has: T1c
  for MEN-RT) at the axial slice of largest tumour extent, with the class's outline (ground truth,
  else prediction).
- ``<ID>_features.png`` (Fig. 6): the feature channels the update changes most (variance of
  ``after - before`` over the slice), before and after the intra-class update, at the
  feature map's own resolution, beside the reference classes down-sampled to it.

``explain_folder`` runs a ``cga train`` checkpoint of any number of input sequences on the cases it
fits (``check_model_fits``), and writes under the output rule of every writing command
(``file_safety.check_output``, checked for every case before the first is read: nothing replaced without
``--overwrite``, never inside an input; each PNG atomic, a symlink's target written).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch

import cga_kernels as ck

from ..data.cases import check_headers, load_case, normalize, pad_to_multiple
from ..data.file_safety import check_output, safe_case_path
from ..data.labels import CLASS_NAMES
from ..data.layouts import find_cases, get_layout
from ..evaluation.plots import pyplot, save_png
from ..nn.checkpoint import check_model_fits, model_channel_order, trained_layout
from ..nn.config import SIZE_MULTIPLE

ATTENTION_PNG, FEATURES_PNG = "_attention.png", "_features.png"
DPI = 100
PANEL_INCHES = 3.2


class Capture(NamedTuple):
    """What the intra-class update saw in one forward pass of a single image."""

    attention: torch.Tensor  # (K, *S_a) softmax over classes of the attention logits
    before: torch.Tensor  # (C, *S_f) features entering the update
    after: torch.Tensor  # (C, *S_f) features leaving it


def capture_update(model: torch.nn.Module, image: torch.Tensor) -> Capture:
    """Run ``model`` on ``image (1, C_in, *S)`` and return what its (first) intra-class update saw."""
    updates = [m for m in model.modules() if isinstance(m, ck.IntraClassUpdate)]
    if not updates:
        raise ValueError(
            "the model has no intra-class update (a baseline U-Net, or intra off): it has no attention maps to explain"
        )
    seen = {}

    def hook(module, args, output):
        seen.update(before=args[0], attention=args[1], after=output[0])

    handle = updates[0].register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError("the model's intra-class update was not called during its forward pass")
    return Capture(seen["attention"][0].float().softmax(0), seen["before"][0].float(), seen["after"][0].float())


def _logits(output) -> torch.Tensor:
    """The segmentation logits of a CGA U-Net (``.logits``) or a drop-in wrapper (``.output``)."""
    return output.logits if hasattr(output, "logits") else output.output


def tumour_slice(classes: np.ndarray) -> int:
    """The axial slice (last axis) with the most tumour voxels; the middle one when there is none."""
    per_slice = (classes > 0).sum(axis=(0, 1))
    return int(np.argmax(per_slice)) if per_slice.any() else classes.shape[2] // 2


def tumour_window(classes: np.ndarray, z: int, roi) -> tuple[slice, ...]:
    """A window of size ``roi`` (clipped to the volume) centred on the tumour in x, y and on slice ``z``."""
    where = np.argwhere(classes > 0)
    centre = list(where.mean(0).round().astype(int)) if len(where) else [s // 2 for s in classes.shape]
    centre[2] = z
    sizes = [min(r, s) for r, s in zip(roi, classes.shape)]
    starts = [int(np.clip(c - r // 2, 0, s - r)) for c, r, s in zip(centre, sizes, classes.shape)]
    return tuple(slice(a, a + r) for a, r in zip(starts, sizes))


def _show(ax, plane: np.ndarray, **style):
    """An ``(X, Y)`` plane shown like ``overlay.py`` shows slices (rotated 90 degrees), no axes."""
    ax.axis("off")
    return ax.imshow(np.rot90(plane), **style)


def _grey(plane: np.ndarray) -> np.ndarray:
    low, high = float(plane.min()), float(plane.max())
    return (plane - low) / (high - low + 1e-8)


def class_names(scheme) -> tuple:
    """Each class's panel title of a label ``scheme``: its label name, then its tissue on a second line
    (``ET``, ``(enhancing tumour)``)."""
    return tuple(n if n == t else f"{n}\n({t})" for n, t in zip(scheme.names, scheme.tissues))


def attention_figure(
    backdrop: np.ndarray,
    attention: np.ndarray,
    reference: np.ndarray,
    path,
    *,
    title: str,
    outline: str,
    names: tuple = CLASS_NAMES,
) -> None:
    """Fig. 7: per class ``k`` of ``attention (K, X, Y)``, the map over ``backdrop (X, Y)`` (a sequence) with
    the outline of ``reference == k`` (``reference (X, Y)`` class indices, from ``outline``); ``names[k]``
    titles class ``k``'s panel."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    classes = attention.shape[0]
    fig, axes = plt.subplots(1, classes, figsize=(PANEL_INCHES * classes + 1.2, PANEL_INCHES + 0.9), squeeze=False)
    for k, ax in enumerate(axes[0]):
        _show(ax, _grey(backdrop), cmap="gray")
        image = _show(ax, attention[k], cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
        if (reference == k).any():
            ax.contour(np.rot90(reference == k).astype(float), levels=[0.5], colors="black", linewidths=0.8)
        ax.set_title(f"class {k}: {names[k] if k < len(names) else k}", fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="attention: softmax over classes")
    fig.legend(
        handles=[Line2D([0], [0], color="black", label=f"outline of the class: {outline}")],
        loc="lower center",
        fontsize=8,
    )
    fig.suptitle(title, fontsize=10)
    save_png(fig, path, dpi=DPI)


def changed_channels(before: np.ndarray, after: np.ndarray, count: int) -> list[int]:
    """The ``count`` channels of ``(C, X, Y)`` maps whose update ``after - before`` varies most."""
    return [int(c) for c in np.argsort(-(after - before).reshape(len(before), -1).var(axis=1), kind="stable")[:count]]


def features_figure(
    before: np.ndarray, after: np.ndarray, reference: np.ndarray, path, *, channels: list[int], title: str
) -> None:
    """Fig. 6: rows of (before, after, reference) for ``channels`` of ``before``/``after (C, X, Y)``;
    before and after share one colour scale per channel (red large, blue small)."""
    plt = pyplot()
    fig, axes = plt.subplots(
        len(channels), 3, figsize=(3 * PANEL_INCHES + 0.8, PANEL_INCHES * len(channels)), squeeze=False
    )
    for row, c in zip(axes, channels):
        low, high = float(min(before[c].min(), after[c].min())), float(max(before[c].max(), after[c].max()))
        for ax, plane, name in zip(row[:2], (before[c], after[c]), ("before", "after")):
            image = _show(ax, plane, cmap="jet", vmin=low, vmax=high, interpolation="nearest")
            ax.set_title(f"channel {c}, {name} the update", fontsize=8)
        fig.colorbar(image, ax=row[:2].tolist(), shrink=0.8, label="feature value")
        classes = _show(
            row[2], reference, cmap="viridis", vmin=0, vmax=max(1, int(reference.max())), interpolation="nearest"
        )
        row[2].set_title("classes (reference, same grid)", fontsize=8)
        fig.colorbar(classes, ax=row[2], shrink=0.8, ticks=range(int(reference.max()) + 1), label="class index")
    fig.suptitle(title, fontsize=10)
    save_png(fig, path, dpi=DPI)


def _reference(model, image: torch.Tensor, truth: np.ndarray | None, roi) -> tuple[np.ndarray, str]:
    """``(classes (X, Y, Z) of the padded image, what they are)``: the ground truth when it has a
    tumour, else the model's own sliding-window prediction."""
    if truth is not None and truth.any():
        return pad_to_multiple(truth, SIZE_MULTIPLE), "ground truth"
    from ..nn.sliding_window import class_indices, predict_probs

    segmenter = lambda window: SimpleNamespace(logits=_logits(model(window)))  # noqa: E731
    return class_indices(predict_probs(segmenter, image, roi)).cpu().numpy(), "prediction"


def explain_volume(
    model,
    image: torch.Tensor,
    backdrop: np.ndarray,
    truth: np.ndarray | None,
    out_prefix: Path,
    *,
    roi=(128, 128, 128),
    channels: int = 4,
    names: tuple = CLASS_NAMES,
    sequence: str = "FLAIR",
) -> tuple[Path, Path]:
    """Write ``<out_prefix>_attention.png`` and ``<out_prefix>_features.png`` for one normalised
    ``image (C_in, X, Y, Z)`` (any number of sequences; sizes multiples of 8), the raw ``backdrop (X, Y, Z)``
    the maps are drawn on (the sequence named ``sequence``), ``truth`` (class indices, or None) and the
    ``names`` of the model's classes; ``channels``: how many feature channels Fig. 6 shows."""
    reference, outline = _reference(model, image, truth, roi)
    backdrop = pad_to_multiple(backdrop, SIZE_MULTIPLE)
    z = tumour_slice(reference)
    window = tumour_window(reference, z, [max(SIZE_MULTIPLE, r - r % SIZE_MULTIPLE) for r in roi])
    seen = capture_update(model, image[(slice(None),) + window][None])
    size = tuple(w.stop - w.start for w in window)
    attention = torch.nn.functional.interpolate(seen.attention[None], size=size, mode="trilinear", align_corners=False)[
        0
    ]
    local_z = z - window[2].start
    name = out_prefix.name
    paths = Path(f"{out_prefix}{ATTENTION_PNG}"), Path(f"{out_prefix}{FEATURES_PNG}")
    attention_figure(
        backdrop[window][:, :, local_z],
        attention[:, :, :, local_z].cpu().numpy(),
        reference[window][:, :, local_z],
        paths[0],
        title=f"{name}: attention per class over {sequence} at axial slice z={z} (paper Fig. 7)",
        outline=outline,
        names=names,
    )
    step = size[2] // seen.before.shape[-1]  # image voxels per feature voxel
    before, after = (t[..., local_z // step].cpu().numpy() for t in (seen.before, seen.after))
    ref_small = reference[window][::step, ::step, local_z]
    features_figure(
        before,
        after,
        ref_small,
        paths[1],
        channels=changed_channels(before, after, channels),
        title=f"{name}: features before and after the intra-class update, z={z} (paper Fig. 6)",
    )
    return paths


SEQUENCE_NAMES = {"flair": "FLAIR", "t1ce": "T1c", "t1": "T1", "t2": "T2"}  # for figure titles


def _fitting_cases(model, config: dict, checkpoint, input_path, layout) -> tuple:
    """``(cases, channels)``: the cases under ``input_path`` (the training layout preferred, or ``layout``),
    checked to fit the model (same tissue per class, its sequences there) and each by its headers
    (``check_headers``), and the model's input channels as indices into their sequences."""
    cases = find_cases(input_path, layout=layout, prefer=trained_layout(config))
    check_model_fits(model.num_classes, config, cases[0].layout, checkpoint)
    order = model_channel_order(config, checkpoint, cases[0].layout)
    for case in cases:  # every case's files, shapes and grids before the first PNG is written
        check_headers(case)
    return cases, order


def explain_outputs(out_dir, cases) -> list:
    """The two PNGs ``explain_folder`` writes per case: ``[(prefix, (attention.png, features.png)), ...]``."""
    prefixes = [safe_case_path(out_dir, c.case_id, "") for c in cases]
    return [(p, (Path(f"{p}{ATTENTION_PNG}"), Path(f"{p}{FEATURES_PNG}"))) for p in prefixes]


def explain_folder(
    checkpoint,
    input_path,
    out_dir,
    *,
    layout=None,
    roi=(128, 128, 128),
    channels: int = 4,
    device="cpu",
    overwrite: bool = False,
) -> list[Path]:
    """``explain_volume`` for every case under ``input_path`` (read in ``layout`` when given) with the CGA U-Net
    of a ``cga train`` checkpoint. Every output path passes ``check_output`` before the first case is read."""
    from ..nn.checkpoint import load_model
    from ..nn.prototype_field import pool_prototypes_as_trained

    if channels < 1:
        raise ValueError(f"--channels must be at least 1, got {channels}")
    model, config = load_model(checkpoint, device)
    pool_prototypes_as_trained(model, config, checkpoint)  # the network cga predict runs
    cases, order = _fitting_cases(model, config, checkpoint, input_path, layout)
    outputs = explain_outputs(out_dir, cases)
    will_write = [path for _, pair in outputs for path in pair]
    check_output(out_dir, inputs=(input_path, checkpoint), overwrite=overwrite, will_write=will_write)
    names = class_names(get_layout(cases[0].layout).scheme)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for source, (prefix, _) in zip(cases, outputs):
        case = load_case(source, with_labels=True)
        image = torch.from_numpy(pad_to_multiple(normalize(case.image[order]), SIZE_MULTIPLE)).to(device)
        shown = "flair" if "flair" in case.modalities else case.modalities[0]  # as the overlays of cga predict
        written += explain_volume(
            model, image, case.image[case.modalities.index(shown)], case.classes, prefix, roi=roi,
            channels=channels, names=names, sequence=SEQUENCE_NAMES[shown],
        )  # fmt: skip
    return written
