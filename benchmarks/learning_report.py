"""The report of ``benchmarks/learning.py``: seed means, paired differences against a baseline, a figure.

Rows are the runs of ``results.jsonl``: ``{"variant", "seed", "train_min", "val": {...}, "test": {...}}``
with ``{"WT", "TC", "ET", "outside"}`` per split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cga_model.evaluation.plots import pyplot, save_png

REGIONS = ("WT", "TC", "ET")
SPLITS = ("val", "test")


def by_variant(rows: list) -> dict:
    """``{variant: {seed: row}}`` in the order variants first appear."""
    table: dict = {}
    for row in rows:
        table.setdefault(row["variant"], {})[row["seed"]] = row
    return table


def seed_stats(values, signed: bool = False) -> str:
    """``mean ± std`` (sample std over seeds; 0 for one seed), the mean with its sign when ``signed``."""
    values = np.asarray(values, dtype=float)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():{'+' if signed else ''}.3f} ± {spread:.3f}"


def score_table(table: dict, split: str, help: dict) -> list:
    """Markdown rows: mean ± std over seeds per region, tumour voxels outside the brain, minutes per run."""
    lines = [
        "| variant | seeds | WT | TC | ET | outside brain | train min |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, seeds in table.items():
        runs = list(seeds.values())
        cells = [seed_stats([r[split][region] for r in runs]) for region in REGIONS]
        outside = sum(r[split]["outside"] for r in runs)
        minutes = np.mean([r["train_min"] for r in runs])
        lines.append(
            f"| {name}: {help.get(name, '')} | {len(runs)} | {' | '.join(cells)} | {outside} | {minutes:.1f} |"
        )
    return lines


def paired_table(table: dict, split: str, baseline: str) -> list:
    """Markdown rows: per variant, its Dice minus the baseline's on the same seed, per seed and mean ± std."""
    if baseline not in table:
        return [f"(no {baseline} runs: no paired differences)"]
    lines = [
        f"| variant − {baseline} | seeds | WT | TC | ET | per seed (WT / TC / ET) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, seeds in table.items():
        common = sorted(set(seeds) & set(table[baseline]))
        if name == baseline or not common:
            continue
        diffs = {r: [seeds[s][split][r] - table[baseline][s][split][r] for s in common] for r in REGIONS}
        per_seed = "; ".join(
            f"s{s}: " + " / ".join(f"{diffs[r][i]:+.3f}" for r in REGIONS) for i, s in enumerate(common)
        )
        cells = " | ".join(seed_stats(diffs[r], signed=True) for r in REGIONS)
        lines.append(f"| {name} | {len(common)} | {cells} | {per_seed} |")
    return lines


def run_table(rows: list) -> list:
    """Markdown rows: every run's own Dice, so that a later run of the same variant and seed can be compared."""
    lines = [
        "| variant | seed | steps | val WT / TC / ET | test WT / TC / ET | train CPU min | code |",
        "|---|---:|---:|---|---|---:|---|",
    ]
    for r in rows:
        val, test = (" / ".join(f"{r[split][region]:.4f}" for region in REGIONS) for split in SPLITS)
        cpu, code = f"{r['train_cpu_min']:.1f}", r.get("code", "")
        lines.append(f"| {r['variant']} | {r['seed']} | {r['steps']} | {val} | {test} | {cpu} | {code} |")
    return lines


def format_report(rows: list, *, baseline: str, help: dict | None = None) -> str:
    """The whole report in markdown: scores and paired differences on the validation and test cases, then
    every run."""
    table, help = by_variant(rows), help or {}
    parts = []
    for split in SPLITS:
        name = "validation cases (to choose defaults)" if split == "val" else "held-out test cases (reported only)"
        parts += [f"### {name}", "", *score_table(table, split, help), "", *paired_table(table, split, baseline), ""]
    parts += ["### every run", "", *run_table(rows)]
    return "\n".join(parts).rstrip()


def plot_report(rows: list, path: Path, *, baseline: str) -> None:
    """Test Dice per region: one bar per variant (seed mean), one dot per seed."""
    plt = pyplot()
    table = by_variant(rows)
    fig, axes = plt.subplots(1, len(REGIONS), figsize=(4 * len(REGIONS), 3.6), sharey=True)
    for ax, region in zip(axes, REGIONS):
        for i, (name, seeds) in enumerate(table.items()):
            values = [r["test"][region] for r in seeds.values()]
            ax.bar(i, np.mean(values), color="tab:grey" if name == baseline else "tab:blue", alpha=0.6)
            ax.plot([i] * len(values), values, "k.", ms=6)
        ax.set_xticks(range(len(table)), list(table), rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{region} Dice (held-out cases)")
        ax.set_ylim(0, 1)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
