"""A panel of synthetic full-size cases for the docs: ``python -m benchmarks.synth_panel [--out PNG]``.

One row per case (easy, then hard cases of ``cga synth --full-size --difficulty``), one column per
sequence (FLAIR, T1, T1ce, T2) plus the labels, on the axial slice through the tumour's centre.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cga_model.data.layouts import MODALITIES
from cga_model.data.synth import FULL_SIZE_GENERATORS
from cga_model.evaluation.plots import pyplot, save_png

LABEL_COLOURS = np.array([[0, 0, 0], [0.9, 0.2, 0.2], [0.2, 0.8, 0.2], [1.0, 0.9, 0.1]])  # NCR/NET, ED, ET


def panel_rows(seeds_easy, seeds_hard) -> list:
    """``[(title, images (4, *S), classes (*S))]`` of the chosen cases."""
    rows = [(f"easy, seed {s}", *FULL_SIZE_GENERATORS["easy"](s)) for s in seeds_easy]
    return rows + [(f"hard, seed {s}", *FULL_SIZE_GENERATORS["hard"](s)) for s in seeds_hard]


def draw_panel(rows, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 5, figsize=(12.5, 2.6 * len(rows)), squeeze=False)
    for row, (title, images, classes) in zip(axes, rows):
        z = int(np.argwhere(classes > 0)[:, 2].mean()) if classes.any() else classes.shape[2] // 2
        for ax, m in zip(row, range(4)):
            ax.imshow(images[m, :, :, z].T, cmap="gray", origin="lower")
            ax.set_title(f"{title}: {MODALITIES[m]}", fontsize=8)
        row[4].imshow(LABEL_COLOURS[classes[:, :, z].T], origin="lower")
        row[4].set_title("labels: NCR/NET red, ED green, ET yellow", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    save_png(fig, path, dpi=90)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images/synth_full_size.png", help="the PNG to write")
    args = parser.parse_args(argv)
    draw_panel(panel_rows([0], [0, 1, 2, 3]), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
