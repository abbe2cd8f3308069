"""``curves.png`` of a run: training loss terms and validation Dice against epoch, from ``metrics.jsonl``.

The validation panel draws every region the run validated (each ``val_dice_<region>`` key of the log:
``LabelScheme.regions`` of its layout, so WT/TC/ET for GLI, + RC for GLI 2024 and MET, GTV for MEN-RT).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation.plots import pyplot, save_png

LOSS_TERMS = ("loss", "dice", "attention", "inter")
VAL_PREFIX = "val_dice_"


def validated_regions(records: list[dict]) -> list[str]:
    """The regions of the ``val_dice_<region>`` keys of ``records``, in the order they first appear."""
    keys = dict.fromkeys(k for r in records for k in r if k.startswith(VAL_PREFIX))
    return [k[len(VAL_PREFIX) :] for k in keys]


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Two panels (loss terms; validation Dice per validated region) from the JSON lines at ``log_path``."""
    plt = pyplot()
    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in LOSS_TERMS:
        points = [(r["epoch"], r[key]) for r in records if key in r]
        if points:
            ax1.plot(*zip(*points), label=key)
    ax1.set_xlabel("epoch"), ax1.set_title("training loss terms"), ax1.legend(), ax1.grid(alpha=0.3)
    for region in validated_regions(records):  # present on validation epochs only (--val-every)
        points = [(r["epoch"], r[VAL_PREFIX + region]) for r in records if VAL_PREFIX + region in r]
        ax2.plot(*zip(*points), marker=".", label=region)
    ax2.set_xlabel("epoch"), ax2.set_ylim(0, 1), ax2.set_title("validation Dice"), ax2.grid(alpha=0.3)
    if ax2.lines:
        ax2.legend()
    fig.tight_layout()
    save_png(fig, png_path, dpi=100)
