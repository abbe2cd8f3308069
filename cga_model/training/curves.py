"""``curves.png`` of a run: training loss terms and validation Dice against epoch, from ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation.plots import pyplot, save_png


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Two panels (loss terms; validation Dice WT/TC/ET) from the JSON lines at ``log_path``."""
    plt = pyplot()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in ("loss", "dice", "attention", "inter"):
        ax1.plot(epochs, [r[key] for r in records], label=key)
    ax1.set_xlabel("epoch"), ax1.set_title("training loss terms"), ax1.legend(), ax1.grid(alpha=0.3)
    for key in ("val_dice_WT", "val_dice_TC", "val_dice_ET"):  # present on validation epochs only (--val-every)
        points = [(r["epoch"], r[key]) for r in records if key in r]
        if points:
            ax2.plot(*zip(*points), marker=".", label=key[-2:])
    ax2.set_xlabel("epoch"), ax2.set_ylim(0, 1), ax2.set_title("validation Dice"), ax2.grid(alpha=0.3)
    if ax2.lines:
        ax2.legend()
    fig.tight_layout()
    save_png(fig, png_path, dpi=100)
