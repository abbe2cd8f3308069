"""Overlay PNG of a case: the axial slice with the largest tumour (FLAIR, or the first sequence there is),
prediction beside truth, each class coloured by its tissue and named in the legend as its label scheme names it
(GLI: NETC, SNFH, ET, RC; PED: ET, NETC, CC, ED; MEN-RT: GTV)."""

from __future__ import annotations

import numpy as np

from ..data.labels import CLASS_NAMES, CYST, GTV
from .plots import pyplot, save_png

# tissue -> colour: core red, edema green, enhancing yellow, resection cavity cyan, cyst magenta, GTV orange
TISSUE_COLOURS = {
    CLASS_NAMES[1]: (1.0, 0.2, 0.2),
    CLASS_NAMES[2]: (0.2, 0.9, 0.2),
    CLASS_NAMES[3]: (1.0, 0.9, 0.1),
    CLASS_NAMES[4]: (0.1, 0.8, 1.0),
    CYST: (0.9, 0.3, 0.9),
    GTV: (1.0, 0.55, 0.0),
}
COLOUR_WORDS = {CLASS_NAMES[1]: "red", CLASS_NAMES[2]: "green", CLASS_NAMES[3]: "yellow", CLASS_NAMES[4]: "cyan",
                CYST: "magenta", GTV: "orange"}  # fmt: skip


def _blend(backdrop: np.ndarray, labels_slice: np.ndarray, tissues: tuple) -> np.ndarray:
    grey = backdrop - backdrop.min()
    grey = grey / (grey.max() + 1e-8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for k, tissue in enumerate(tissues[1:], start=1):
        where = labels_slice == k
        rgb[where] = 0.45 * rgb[where] + 0.55 * np.array(TISSUE_COLOURS.get(tissue, (1.0, 1.0, 1.0)))
    return rgb


def legend(names: tuple, tissues: tuple) -> str:
    """``"red: NETC, green: SNFH, ..."``: the colour of each foreground class with its label name."""
    return ", ".join(f"{COLOUR_WORDS.get(t, 'white')}: {n}" for n, t in zip(names[1:], tissues[1:]))


def save_overlay(
    path, backdrop: np.ndarray, pred: np.ndarray, *, truth: np.ndarray | None = None, title: str = "", scheme=None
) -> None:
    """``backdrop``, ``pred``, ``truth``: ``(X, Y, Z)`` volumes; class indices of the label ``scheme`` (a
    ``LabelScheme``: colours by its ``tissues``, legend by its ``names``; default the GLI family's classes)."""
    tissues = scheme.tissues if scheme is not None else CLASS_NAMES
    names = scheme.names if scheme is not None else ("background", "core", "edema", "enhancing", "cavity")
    plt = pyplot()
    reference = truth if truth is not None and truth.any() else pred
    z = int(np.argmax((reference > 0).sum(axis=(0, 1)))) if reference.any() else backdrop.shape[2] // 2
    panels = [("prediction", pred)] + ([("ground truth", truth)] if truth is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    for ax, (name, labels) in zip(axes[0], panels):
        ax.imshow(np.rot90(_blend(backdrop[:, :, z], labels[:, :, z], tissues)))
        ax.set_title(f"{name} (z={z})")
        ax.axis("off")
    fig.suptitle(f"{title}  {legend(names, tissues)}", fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=90)
