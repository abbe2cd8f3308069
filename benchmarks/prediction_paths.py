"""Prediction paths of ``cga predict`` on held-out full-size cases: Dice and CPU seconds, from learned models.

``python -m benchmarks.prediction_paths --out DIR [--variant cga] [--steps 240] [--seeds 1 2 3] [--paths ...]
[--split test|val]``

``DIR`` is the ``--out`` folder of ``benchmarks.learning``: its held-out test cases (``DIR/test``; or its
validation cases, ``DIR/val``, with ``--split val``) are
segmented with each finished run's final weights (``run_<variant>_s<seed>_<steps>/last.pt``, a run
being finished when ``results.jsonl`` holds it) along each path of ``PATHS`` (``predict_folder``'s
segmentation options), one case at a time (every path of ``--paths``, in its order, on a case before
the next case), and scored as ``benchmarks.learning`` scores (Dice per
region WT, TC, ET, the tumour voxels predicted outside the brain). Each case's row, with its split, the CPU
seconds (process time, torch on ``--threads`` threads) of its ``predict_folder`` call (reading the
case, segmenting it, writing its label file and overlay) and the path's log line, is appended to
``DIR/prediction_paths.jsonl``: rerun the same command to go on after an interruption (rows there
are kept, not redone). Seeds whose run is not finished yet are skipped and named.

The report gives, per path, the mean +- std over seeds of the mean Dice over the cases, the paired
difference of every path against ``windows128`` (the same seed, the same cases), and whether no
region drops by more than ``TOLERANCE`` for each pair of ``RULES`` (the whole box against ``windows128``,
each bfloat16 path against its float32 twin); it is printed, written to ``DIR/prediction_paths/report.md``
and drawn in ``DIR/prediction_paths/prediction_paths.png`` (``DIR/prediction_paths/val/`` for ``--split val``).
The predictions are kept under ``DIR/prediction_paths/<variant>_s<seed>_<steps>/<path>/`` (``.../val/<path>/``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.learning import REGIONS, VARIANTS, Setting, folder_scores, load_results, train_config
from benchmarks.learning_report import seed_stats
from cga_model.data.layouts import find_cases
from cga_model.evaluation.plots import pyplot, save_png
from cga_model.inference.predict import predict_folder

#: name: (what it is, ``predict_folder`` segmentation options; ``"crop"``: the run's training crop). Prototypes
#: per input (``prototype_field="input"``) unless the name ends in ``_window`` (over the 128^3 window around each
#: voxel) or ``_crop`` (per tile of the training crop).
PATHS = {
    "whole_box_window": (
        "the whole brain box in one pass, prototypes over the 128^3 window around each voxel (the default)",
        {"whole_box": True, "precision": "float32", "prototype_field": "window"},
    ),
    "whole_box_crop": (
        "the whole brain box in one pass, prototypes per tile of the training crop (--prototype-field crop)",
        {"whole_box": True, "precision": "float32", "prototype_field": "crop"},
    ),
    "whole_box": (
        "the whole brain box in one pass, prototypes over the box (--prototype-field input)",
        {"whole_box": True, "precision": "float32", "prototype_field": "input"},
    ),
    **{
        f"windows{n}": (
            f"{n}^3 windows at overlap 0.5, prototypes per window (--roi {n} {n} {n} --prototype-field input)",
            {"roi": (n,) * 3, "overlap": 0.5, "precision": "float32", "prototype_field": "input"},
        )
        for n in (128, 64, 96, 160)  # 128^3: cga predict's windows; the others show how a network depends on them
    },
    "whole_box_bf16": (
        "--whole-box --precision bfloat16 --prototype-field input",
        {"whole_box": True, "precision": "bfloat16", "prototype_field": "input"},
    ),
    "windows128_bf16": (
        "128^3 windows at overlap 0.5 --precision bfloat16 --prototype-field input",
        {"roi": (128,) * 3, "overlap": 0.5, "precision": "bfloat16", "prototype_field": "input"},
    ),
    "whole_box_tta8": (
        "--whole-box averaged over 8 flips (--tta 8), prototypes over the box",
        {"whole_box": True, "tta": 8, "precision": "float32", "prototype_field": "input"},
    ),
    "windows_crop": (
        "windows of the training crop at overlap 0.5",
        {"roi": "crop", "overlap": 0.5, "precision": "float32", "prototype_field": "input"},
    ),
}
REFERENCE = "windows128"
TOLERANCE = 0.005  # the largest drop of a region's Dice a path may cost against the one it replaces
RULES = (
    ("whole_box_window", "windows128"),
    ("whole_box_crop", "windows128"),
    ("whole_box", "windows128"),
    ("whole_box_bf16", "whole_box"),
    ("windows128_bf16", "windows128"),
)


def finished_runs(out: Path, variant: str, steps: int, seeds) -> dict:
    """``{seed: last.pt}`` of the runs of ``variant`` with ``steps`` that ``results.jsonl`` holds (finished)."""
    rows = load_results(out / "results.jsonl")
    done = {r["seed"] for r in rows if (r["variant"], r["steps_asked"]) == (variant, steps)}
    cohorts = {"cache": out / "train_cache", "test": out / "test"}
    runs = {}
    for seed in seeds:
        folder = Path(train_config(VARIANTS[variant], Setting(out=out, steps=steps), seed, cohorts).out)
        if seed in done and (folder / "last.pt").exists():
            runs[seed] = folder / "last.pt"
    return runs


def path_options(path: str, checkpoint: Path) -> dict:
    """The segmentation options of ``path``, the training crop read from ``checkpoint``'s config."""
    options = dict(PATHS[path][1])
    if options.get("roi") == "crop":
        options["roi"] = tuple(torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]["crop"])
    return options


def predict_case(checkpoint: Path, case_dir: Path, pred_dir: Path, options: dict) -> dict:
    """Segment one case folder with ``predict_folder(**options)``, score it (``folder_scores``); its Dice per
    region, ``outside``, CPU and wall seconds of the call and the path's log line."""
    lines = []
    wall, cpu = time.perf_counter(), time.process_time()
    predict_folder(checkpoint, case_dir, pred_dir, progress=False, log=lines.append, overwrite=True, **options)
    timing = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    return {**folder_scores(pred_dir, case_dir), **timing, "plan": " / ".join(lines)}


def measure(out: Path, variant: str, steps: int, seeds, paths, split: str = "test", progress: bool = True) -> list:
    """Every case of ``out/<split>`` along every path for every finished seed (rows already in
    ``out/prediction_paths.jsonl`` are kept); returns the rows of ``variant``, ``steps``, ``seeds``, ``paths`` and
    ``split``."""
    results = out / "prediction_paths.jsonl"
    runs = finished_runs(out, variant, steps, seeds)
    missing = [s for s in seeds if s not in runs]
    if missing:
        print(f"prediction_paths: no finished run_{variant}_s<seed>_{steps} for seeds {missing}: skipped")
    cases = [Path(c.images[0]).parent for c in find_cases(out / split)]
    done = {
        (r["variant"], r["steps"], r["seed"], r["path"], r["case"], r.get("split", "test"))
        for r in load_results(results)
    }
    todo = [
        (seed, path, case)
        for seed in runs
        for case in cases  # case-major: an interrupted measurement has every path on the same first cases
        for path in paths
        if (variant, steps, seed, path, case.name, split) not in done
    ]
    for seed, path, case in tqdm(todo, desc="cases", disable=not progress):
        pred_dir = out / "prediction_paths" / f"{variant}_s{seed}_{steps}" / (path if split == "test" else split) / path
        row = predict_case(runs[seed], case, pred_dir, path_options(path, runs[seed]))
        row = {"variant": variant, "steps": steps, "seed": seed, "path": path, "case": case.name, "split": split, **row}
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
    return measured_rows(out, variant, steps, seeds, paths, split)


def measured_rows(out: Path, variant: str, steps: int, seeds, paths, split: str = "test") -> list:
    """The rows of ``out/prediction_paths.jsonl`` for ``variant``, ``steps``, ``seeds``, ``paths`` and ``split``
    (rows without one are of the test cases)."""
    return [
        r
        for r in load_results(out / "prediction_paths.jsonl")
        if (r["variant"], r["steps"], r.get("split", "test")) == (variant, steps, split)
        and r["seed"] in seeds
        and r["path"] in paths
    ]


def by_path(rows: list) -> dict:
    """``{path: {seed: {case: row}}}`` in the order paths first appear."""
    table: dict = {}
    for row in rows:
        table.setdefault(row["path"], {}).setdefault(row["seed"], {})[row["case"]] = row
    return table


def case_mean(cases: dict, key: str, only=None) -> float:
    """The mean of ``key`` over the case rows ``cases`` (``{case: row}``), over ``only`` of them if given."""
    return float(np.mean([row[key] for case, row in cases.items() if only is None or case in only]))


def plan_kind(line: str) -> str:
    """``whole box`` or ``windows of RxRxR`` from a ``predict_folder`` log line."""
    plan = line.split(": ", 1)[-1]
    return "whole box" if plan.startswith("whole box") else plan.split(" (", 1)[0]


def score_table(table: dict) -> list:
    """Markdown rows: per path, mean ± std over seeds of the mean Dice over cases, CPU s per case, plans taken."""
    lines = [
        "| path | seeds | cases | WT | TC | ET | outside brain | CPU s / case | plan |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for path, seeds in table.items():
        cells = [seed_stats([case_mean(cases, r) for cases in seeds.values()]) for r in REGIONS]
        counts = sorted({len(cases) for cases in seeds.values()})
        outside = sum(row["outside"] for cases in seeds.values() for row in cases.values())
        cpu = np.mean([row["cpu_s"] for cases in seeds.values() for row in cases.values()])
        plans = ", ".join(sorted({plan_kind(row["plan"]) for cases in seeds.values() for row in cases.values()}))
        what = PATHS.get(path, ("",))[0]
        lines.append(
            f"| {path}: {what} | {len(seeds)} | {'/'.join(map(str, counts))} | {' | '.join(cells)} | {outside} "
            f"| {cpu:.1f} | {plans} |"
        )
    return lines


def paired(table: dict, path: str, against: str) -> dict:
    """``{seed: {region: Dice of path − Dice of against}}``, each the mean over the cases both have, for the
    seeds both have."""
    diffs = {}
    for seed in sorted(set(table.get(path, {})) & set(table.get(against, {}))):
        common = set(table[path][seed]) & set(table[against][seed])
        if common:
            diffs[seed] = {
                r: case_mean(table[path][seed], r, common) - case_mean(table[against][seed], r, common) for r in REGIONS
            }
    return diffs


def paired_cases(table: dict, path: str, against: str) -> int:
    """How many (seed, case) pairs both ``path`` and ``against`` have."""
    seeds = set(table.get(path, {})) & set(table.get(against, {}))
    return sum(len(set(table[path][s]) & set(table[against][s])) for s in seeds)


def paired_table(table: dict, against: str = REFERENCE) -> list:
    """Markdown rows: per path, its Dice minus ``against``'s on the same seed and cases, mean ± std and per seed."""
    lines = [
        f"| path − {against} | seeds | paired cases | WT | TC | ET | per seed (WT / TC / ET) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for path in table:
        diffs = paired(table, path, against)
        if not diffs:
            continue
        cells = " | ".join(seed_stats([d[r] for d in diffs.values()], signed=True) for r in REGIONS)
        per_seed = "; ".join(f"s{s}: " + " / ".join(f"{d[r]:+.4f}" for r in REGIONS) for s, d in diffs.items())
        lines.append(f"| {path} | {len(diffs)} | {paired_cases(table, path, against)} | {cells} | {per_seed} |")
    return lines


def cpu_ratio(table: dict, path: str, against: str) -> str:
    """CPU seconds per case of ``path`` over ``against``'s, on the seeds and cases both have."""
    pairs = [
        (table[path][s][c]["cpu_s"], table[against][s][c]["cpu_s"])
        for s in set(table.get(path, {})) & set(table.get(against, {}))
        for c in set(table[path][s]) & set(table[against][s])
    ]
    if not pairs:
        return "no common cases"
    ours, theirs = (float(np.mean(v)) for v in zip(*pairs))
    return f"{ours:.1f} vs {theirs:.1f} CPU s per case ({ours / theirs:.2f}x)"


def rule_line(table: dict, path: str, against: str) -> str:
    """Whether no region of ``path`` drops by more than ``TOLERANCE`` Dice against ``against``: on every seed,
    and on the mean over seeds."""
    diffs = paired(table, path, against)
    if not diffs:
        return f"- {path} vs {against}: not measured (no seed has both)"
    worst = {r: min(d[r] for d in diffs.values()) for r in REGIONS}
    means = {r: float(np.mean([d[r] for d in diffs.values()])) for r in REGIONS}
    every = all(v >= -TOLERANCE for v in worst.values())
    mean = all(v >= -TOLERANCE for v in means.values())
    verdict = "HOLDS" if every else ("holds on the seed mean only" if mean else "FAILS")
    return (
        f"- {path} vs {against} ({len(diffs)} seeds, {paired_cases(table, path, against)} paired cases): "
        f"no region drops by more than {TOLERANCE} Dice: **{verdict}** "
        f"(mean difference {', '.join(f'{r} {means[r]:+.4f}' for r in REGIONS)}; worst seed "
        f"{', '.join(f'{r} {worst[r]:+.4f}' for r in REGIONS)}); {cpu_ratio(table, path, against)}"
    )


SPLITS = {"test": "the held-out test cases", "val": "the validation cases"}


def format_report(rows: list, variant: str, steps: int, split: str = "test") -> str:
    """The whole report in markdown: scores per path, paired differences against ``REFERENCE``, the rules."""
    table = by_path(rows)
    if not table:
        return f"### prediction paths of {variant} ({steps} steps)\n\n(no rows: no finished run measured yet)"
    return "\n".join(
        [
            f"### prediction paths of {variant} ({steps} steps) on {SPLITS[split]}",
            "",
            *score_table(table),
            "",
            *paired_table(table),
            "",
            *[rule_line(table, path, against) for path, against in RULES],
            "",
            "CPU seconds are process time of one predict_folder call per case (read, segment, write), with torch on "
            "the given threads, on a shared machine: indicative only.",
        ]
    )


def plot_paths(rows: list, path: Path) -> None:
    """Per region, each path's Dice minus ``REFERENCE``'s (bar: seed mean, dots: seeds, dashes: the tolerance);
    last panel: CPU seconds per case."""
    plt = pyplot()
    table = by_path(rows)
    names = list(table)
    fig, axes = plt.subplots(1, len(REGIONS) + 1, figsize=(4 * (len(REGIONS) + 1), 3.6))
    for ax, region in zip(axes, REGIONS):
        for i, name in enumerate(names):
            values = [d[region] for d in paired(table, name, REFERENCE).values()]
            if values:
                ax.bar(i, np.mean(values), color="tab:blue", alpha=0.6)
                ax.plot([i] * len(values), values, "k.", ms=6)
        ax.axhline(-TOLERANCE, color="tab:red", ls="--", lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{region} Dice − {REFERENCE}")
    cpu = [np.mean([row["cpu_s"] for cases in table[n].values() for row in cases.values()]) for n in names]
    axes[-1].bar(range(len(names)), cpu, color="tab:grey")
    axes[-1].set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axes[-1].set_title("CPU s per case (indicative)")
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the --out folder of benchmarks.learning (results go there)")
    parser.add_argument("--variant", choices=tuple(v for v, spec in VARIANTS.items() if not spec.peer), default="cga")
    parser.add_argument("--steps", type=int, default=240, help="the runs' step budget (run_<variant>_s<seed>_<steps>)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--paths", nargs="+", choices=tuple(PATHS), default=list(PATHS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--split", choices=tuple(SPLITS), default="test", help="the cases to segment (default: test)")
    parser.add_argument("--report-only", action="store_true", help="report the rows measured so far, predict nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not (out / "test" / ".complete").exists():
        parser.error(f"--out {out}: no finished test cohort in {out / 'test'}: run benchmarks.learning --out {out}")
    torch.set_num_threads(args.threads)
    measure_or_read = measured_rows if args.report_only else measure
    rows = measure_or_read(out, args.variant, args.steps, args.seeds, args.paths, args.split)
    report = format_report(rows, args.variant, args.steps, args.split)
    print(report)
    folder = out / "prediction_paths" / ("" if args.split == "test" else args.split)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(report + "\n")
    if rows:
        plot_paths(rows, folder / "prediction_paths.png")


if __name__ == "__main__":
    main()
