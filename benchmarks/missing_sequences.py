"""Held-out Dice with every sequence, and with each single sequence missing, for one or more checkpoints.

``python -m benchmarks.missing_sequences CHECKPOINT [CHECKPOINT ...] --cases HELD_OUT --out DIR``

``CHECKPOINT``: a ``last.pt`` or ``best.pt`` of ``cga train`` (e.g. ``<out>/run_<variant>_s<seed>_<steps>/last.pt``
of ``benchmarks.learning``); ``HELD_OUT``: a folder of case folders with their segmentations. For every
condition (``all``, then ``no <sequence>`` for each sequence of the cases' layout) the cases are put in
``DIR/inputs/<condition>/`` as symlinks to their files, without the file of the missing sequence, and
every checkpoint segments them as ``cga predict --allow-missing`` does (``predict_folder``, its
defaults: the missing channel zero-filled after normalisation). The table gives the mean Dice over
the cases per region (WT, TC, ET), per checkpoint and condition, with each checkpoint's
``sequence_dropout``; a second table gives, per dropout rate (checkpoints trained alike, e.g. one per
seed), the mean ± std over its checkpoints and the change from ``all``. Both are printed and written
to ``DIR/missing_sequences.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.learning import REGIONS, folder_scores
from benchmarks.learning_report import seed_stats
from cga_model.data.layouts import find_cases
from cga_model.inference.predict import predict_folder
from cga_model.nn.checkpoint import load_checkpoint

ALL = "all"


def conditions(cases_dir: Path, out: Path) -> dict:
    """``{condition: input folder}``: ``all`` and ``no <sequence>`` for each sequence of the cases' layout, each a
    folder of case folders holding symlinks to the files of ``cases_dir``'s cases (less that sequence's)."""
    cases = find_cases(cases_dir)
    if cases[0].layout == "msd":
        raise ValueError(f"{cases_dir}: MSD cases hold their sequences in one 4-D file; pass case folders")
    folders = {}
    for dropped in (None, *cases[0].modalities):
        name = ALL if dropped is None else f"no {dropped}"
        folder = out / "inputs" / name.replace(" ", "_")
        for case in cases:
            skip = {case.images[case.modalities.index(dropped)]} if dropped else set()
            (folder / case.case_id).mkdir(parents=True, exist_ok=True)
            for source in case.sources:
                link = folder / case.case_id / source.name
                if source not in skip and not link.is_symlink():
                    link.symlink_to(source.resolve())
        folders[name] = folder
    return folders


def checkpoint_name(checkpoint: Path, checkpoints: list) -> str:
    """The run folder's name (``run_<variant>_s<seed>_<steps>``), with the file's when two share a folder."""
    shared = sum(c.parent == checkpoint.parent for c in checkpoints) > 1
    return f"{checkpoint.parent.name}/{checkpoint.name}" if shared else checkpoint.parent.name


def measure(checkpoints: list, cases_dir: Path, out: Path, device: str = "cpu") -> list:
    """One row per checkpoint and condition: ``{"checkpoint", "sequence_dropout", "condition", WT, TC, ET}``."""
    folders = conditions(cases_dir, out)
    rows = []
    for checkpoint in checkpoints:
        name = checkpoint_name(checkpoint, checkpoints)
        rate = load_checkpoint(checkpoint).get("config", {}).get("sequence_dropout", 0.0)
        for condition, folder in folders.items():
            pred_dir = out / "pred" / name.replace("/", "_") / folder.name
            predict_folder(
                checkpoint, folder, pred_dir, device=device, progress=False, log=lambda line: None,
                overwrite=True, allow_missing=True, precision="float32",
            )  # fmt: skip
            scores = folder_scores(pred_dir, cases_dir)
            rows.append({"checkpoint": name, "sequence_dropout": rate, "condition": condition, **scores})
    return rows


def format_table(rows: list) -> str:
    """The markdown table of ``measure``'s rows: mean Dice per region, per checkpoint and condition."""
    lines = [
        "| checkpoint | sequence dropout | condition | " + " | ".join(REGIONS) + " |",
        "|---|---|---|" + "---|" * len(REGIONS),
    ]
    for row in rows:
        dice = " | ".join(f"{row[region]:.3f}" for region in REGIONS)
        lines.append(f"| {row['checkpoint']} | {row['sequence_dropout']:g} | {row['condition']} | {dice} |")
    return "\n".join(lines) + "\n"


def summary_table(rows: list) -> str:
    """Markdown: per sequence dropout rate (the checkpoints trained alike, e.g. one per seed) and condition, the
    mean ± std over those checkpoints of the mean Dice per region, and its change from the ``all`` condition."""
    lines = [
        "| sequence dropout | checkpoints | condition | " + " | ".join(REGIONS) + " | change from all (WT / TC / ET) |",
        "|---|---:|---|" + "---|" * len(REGIONS) + "---|",
    ]
    for rate in sorted({row["sequence_dropout"] for row in rows}):
        group = [row for row in rows if row["sequence_dropout"] == rate]
        full = {row["checkpoint"]: row for row in group if row["condition"] == ALL}
        for condition in dict.fromkeys(row["condition"] for row in group):
            runs = [row for row in group if row["condition"] == condition]
            cells = " | ".join(seed_stats([row[region] for row in runs]) for region in REGIONS)
            change = " / ".join(
                f"{np.mean([row[region] - full[row['checkpoint']][region] for row in runs]):+.3f}" for region in REGIONS
            )
            lines.append(f"| {rate:g} | {len(runs)} | {condition} | {cells} | {change} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="last.pt or best.pt files of cga train")
    parser.add_argument("--cases", type=Path, required=True, help="folder of held-out case folders with labels")
    parser.add_argument("--out", type=Path, required=True, help="folder for inputs/, pred/ and missing_sequences.md")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args.checkpoints, args.cases, args.out, args.device)
    table = format_table(rows) + "\n" + summary_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "missing_sequences.md").write_text(table)
    print(table, end="")


if __name__ == "__main__":
    main()
