"""Overlay PNG of a case: the axial flair slice with the largest tumour, prediction beside truth."""

from __future__ import annotations

import numpy as np

from .plots import pyplot, save_png

# class index -> colour: core red, edema green, enhancing yellow, resection cavity cyan
COLOURS = {1: (1.0, 0.2, 0.2), 2: (0.2, 0.9, 0.2), 3: (1.0, 0.9, 0.1), 4: (0.1, 0.8, 1.0)}


def _blend(flair_slice: np.ndarray, labels_slice: np.ndarray) -> np.ndarray:
    grey = flair_slice - flair_slice.min()
    grey = grey / (grey.max() + 1e-8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for label, colour in COLOURS.items():
        where = labels_slice == label
        rgb[where] = 0.45 * rgb[where] + 0.55 * np.array(colour)
    return rgb


def save_overlay(
    path, flair: np.ndarray, pred: np.ndarray, *, truth: np.ndarray | None = None, title: str = ""
) -> None:
    """``flair``, ``pred``, ``truth``: ``(X, Y, Z)`` volumes; class indices (``labels.CLASS_NAMES``)."""
    plt = pyplot()
    reference = truth if truth is not None and truth.any() else pred
    z = int(np.argmax((reference > 0).sum(axis=(0, 1)))) if reference.any() else flair.shape[2] // 2
    panels = [("prediction", pred)] + ([("ground truth", truth)] if truth is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    for ax, (name, labels) in zip(axes[0], panels):
        ax.imshow(np.rot90(_blend(flair[:, :, z], labels[:, :, z])))
        ax.set_title(f"{name} (z={z})")
        ax.axis("off")
    fig.suptitle(f"{title}  red: core, green: edema, yellow: enhancing, cyan: cavity")
    fig.tight_layout()
    save_png(fig, path, dpi=90)
