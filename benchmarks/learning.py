"""Learning on hard full-size volumes, like a paper's Table 4: variants x seeds on the same cases.

``python -m benchmarks.learning [--out DIR] [--steps 240] [--seeds 1 2 3] [--variants cga no_sam segresnet]``

Synthesises three cohorts of ``cga synth --full-size --difficulty hard`` cases (240x240x155; each
from its own seed): 12 training cases (cached with ``cga preprocess``), 4 validation cases, on which
variants are compared to choose defaults, and 8 held-out test cases, which are only reported. Every
variant trains for the same optimiser steps (batch 2 of 64^3 crops, base width 8: the README's CPU
setting) once per seed, segments the validation and test cases with its final weights
(``cga predict --whole-box``: the whole brain box in one pass, the path every recorded run used;
``benchmarks.prediction_paths`` scores the same checkpoints along ``cga predict``'s default windows
and other paths) and scores Dice per region (WT, TC, ET) and the tumour voxels predicted
outside the brain. Each finished run is appended to ``<out>/results.jsonl``: run the same command
again to go on after an interruption (finished runs are kept, not redone).

The report gives, per variant, the mean +- std over seeds of the mean Dice over cases, and the
paired differences per seed against ``--baseline`` (the same seed, the same cases), with their
mean +- std; it is printed, written to ``<out>/report.md`` and drawn in ``<out>/learning.png``.
Torch uses 2 threads (``--threads``) so that runs on the same machine do the same work.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.learning_report import format_report, plot_report
from cga_model.data.cases import load_case
from cga_model.data.layouts import find_cases, segmentation_classes
from cga_model.data.nifti import load_nifti, read_array
from cga_model.data.preprocess import preprocess
from cga_model.data.synth import synthesize_cohort
from cga_model.data.synth_full_size import FULL_SHAPE
from cga_model.evaluation.metrics import dice, region_mask
from cga_model.inference.predict import predict_folder
from cga_model.nn.config import ModelConfig
from cga_model.nn.loss_config import LossConfig
from cga_model.training.loop import TrainConfig, train

COHORT_SEEDS = {"train": 11, "test": 12, "val": 13}
REGIONS = ("WT", "TC", "ET")
LR = 1e-3
SCORED_FIELD = "window"  # where the SAM pools prototypes when a run is scored: cga predict's default; rows record it


@dataclass(frozen=True)
class Variant:
    """One model to compare: ``ModelConfig``, ``LossConfig`` and ``TrainConfig`` overrides of the defaults,
    or the MONAI peer."""

    name: str
    help: str
    model: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    brain_mask: bool = True
    peer: bool = False


GN = {"norm": "gn"}  # GroupNorm, the released code's: the normalisation of every ablation below, as measured

VARIANTS = {
    v.name: v
    for v in (
        Variant("cga", "the CGA U-Net, every default (BatchNorm)"),
        Variant("no_sam", "the same U-Net without SAM (--no-sam)", model={"sam": False}),
        Variant(
            "cga_features",
            "--attention-path features --attention-loss dice_ce: attention from the features it updates (BatchNorm)",
            model={"attention_path": "features"},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant("cga_no_inter_bn", "--inter-weight 0: no inter-class loss (BatchNorm)", loss={"inter_weight": 0.0}),
        Variant("cga_gate_bn", "--update-gate: a gate on the update (BatchNorm)", model={"update_gate": True}),
        Variant("cga_soft_bn", "--mask-mode soft: soft masks (BatchNorm)", model={"mask_mode": "soft"}),
        Variant(
            "cga_att_dice_ce_bn",
            "--attention-loss dice_ce: attention supervised by Dice + cross-entropy (BatchNorm)",
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_core_bn",
            "--attention-loss dice_ce --intra-classes 1 3: the update writes back to the tumour core's classes only "
            "(BatchNorm)",
            model={"intra_classes": (1, 3)},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_features_core_bn",
            "--attention-path features --attention-loss dice_ce --intra-classes 1 3: attention from the features, the "
            "update written back to the tumour core's classes only (BatchNorm)",
            model={"attention_path": "features", "intra_classes": (1, 3)},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_features_core_soft_bn",
            "--attention-path features --attention-loss dice_ce --intra-classes 1 3 --mask-mode soft: as above with "
            "soft masks, so each voxel is updated in proportion to its core probability (BatchNorm)",
            model={"attention_path": "features", "intra_classes": (1, 3), "mask_mode": "soft"},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_features_mse_bn",
            "--attention-path features: attention from the features, the paper's MSE attention loss (BatchNorm)",
            model={"attention_path": "features"},
        ),
        Variant(
            "cga_features_mse20_bn",
            "--attention-path features --attention-weight 20: as above, the released code's attention weight "
            "(BatchNorm)",
            model={"attention_path": "features"},
            loss={"attention_weight": 20.0},
        ),
        Variant(
            "cga_features_no_inter_bn",
            "--attention-path features --attention-loss dice_ce --inter-weight 0: attention from the features it "
            "updates, no inter-class loss (BatchNorm)",
            model={"attention_path": "features"},
            loss={"attention_loss": "dice_ce", "inter_weight": 0.0},
        ),
        Variant("cga_gn", "the CGA U-Net with GroupNorm, the released code's (--norm gn)", model=GN),
        Variant(
            "no_sam_gn", "the same U-Net without SAM, with GroupNorm (--no-sam --norm gn)", model={**GN, "sam": False}
        ),
        Variant("cga_gate", "--norm gn --update-gate: a gate on the update", model={**GN, "update_gate": True}),
        Variant(
            "cga_gate_no_inter",
            "--norm gn --update-gate --inter-weight 0",
            model={**GN, "update_gate": True},
            loss={"inter_weight": 0.0},
        ),
        Variant("cga_soft", "--norm gn --mask-mode soft: soft masks", model={**GN, "mask_mode": "soft"}),
        Variant(
            "cga_no_inter", "--norm gn --inter-weight 0: no inter-class loss", model=GN, loss={"inter_weight": 0.0}
        ),
        Variant(
            "cga_relu_path",
            "--norm gn --attention-path relu: a ReLU between the attention path's convolutions",
            model={**GN, "attention_path": "relu"},
        ),
        Variant(
            "cga_att20",
            "--norm gn --attention-weight 20: the released code's attention-loss weight",
            model=GN,
            loss={"attention_weight": 20.0},
        ),
        Variant(
            "cga_att_dice_ce",
            "--norm gn --attention-loss dice_ce: attention supervised by Dice + cross-entropy",
            model=GN,
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_att_dice_ce_relu",
            "--norm gn --attention-loss dice_ce --attention-path relu",
            model={**GN, "attention_path": "relu"},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_att_dice_ce_tumour",
            "--norm gn --attention-loss dice_ce --intra-classes 1 2 3: the update writes back to tumour voxels only",
            model={**GN, "intra_classes": (1, 2, 3)},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_feature_attention",
            "--norm gn --attention-path features --attention-loss dice_ce: the attention from the features it updates",
            model={**GN, "attention_path": "features"},
            loss={"attention_loss": "dice_ce"},
        ),
        Variant(
            "cga_dropout",
            "--norm gn --sequence-dropout 0.25 (tolerates missing sequences)",
            model=GN,
            train={"sequence_dropout": 0.25},
        ),
        Variant(
            "paper_recipe",
            "--norm gn with the paper's loss and sampling: --loss dice --foreground-share 0 --no-brain-mask",
            model=GN,
            loss={"segmentation": "dice"},
            train={"foreground_share": 0.0},
            brain_mask=False,
        ),
        Variant("segresnet", "MONAI SegResNet, DiceCELoss, MONAI transforms and sliding windows", peer=True),
    )
}


@dataclass
class Setting:
    """The data and the budget of one measurement (the benchmark's defaults; the quick test's are smaller)."""

    out: Path
    train_cases: int = 12
    val_cases: int = 4
    test_cases: int = 8
    shape: tuple = FULL_SHAPE
    difficulty: str = "hard"
    steps: int = 240
    crop: tuple = (64, 64, 64)
    batch_size: int = 2
    base_channels: int = 8
    workers: int | None = None
    seeds: tuple = (1, 2, 3)
    variants: list = field(default_factory=lambda: ["cga", "no_sam", "segresnet"])


def make_cohorts(setting: Setting) -> dict:
    """The cohorts under ``setting.out`` (made once; kept for a rerun): ``{"cache", "train", "val", "test"}``
    folders."""
    folders = {split: setting.out / split for split in COHORT_SEEDS}
    counts = {"train": setting.train_cases, "val": setting.val_cases, "test": setting.test_cases}
    for split, folder in folders.items():
        if not (folder / ".complete").exists():
            synthesize_cohort(
                folder,
                counts[split],
                seed=COHORT_SEEDS[split],
                shape=setting.shape,
                difficulty=setting.difficulty,
                progress=False,
            )
            (folder / ".complete").touch()
    cache = setting.out / "train_cache"
    if not (cache / ".complete").exists():
        preprocess(folders["train"], cache, workers=2, progress=False)
        (cache / ".complete").touch()
    return {**folders, "cache": cache}


def case_scores(pred: np.ndarray, case) -> dict:
    """Dice per region of one case and its tumour voxels predicted outside the brain (zero in every modality)."""
    brain = np.any(case.image != 0, axis=0)
    scores = {r: dice(region_mask(pred, r), region_mask(case.classes, r)) for r in REGIONS}
    return {**scores, "outside": int(np.count_nonzero(pred[~brain]))}


def mean_scores(per_case: list) -> dict:
    """Mean Dice per region over cases and the outside voxels summed."""
    return {
        **{r: float(np.mean([c[r] for c in per_case])) for r in REGIONS},
        "outside": sum(c["outside"] for c in per_case),
    }


def folder_scores(pred_dir: Path, folder: Path) -> dict:
    """``mean_scores`` of the ``cga predict`` label files in ``pred_dir`` against the cases of ``folder``."""
    per_case = []
    for source in find_cases(folder):
        case = load_case(source)
        path = pred_dir / f"{case.case_id}.nii.gz"
        per_case.append(case_scores(segmentation_classes(read_array(load_nifti(path), path), path, case.layout), case))
    return mean_scores(per_case)


def train_config(variant: Variant, setting: Setting, seed: int, cohorts: dict) -> TrainConfig:
    steps_per_epoch = math.ceil(setting.train_cases / setting.batch_size)
    config = TrainConfig(
        data=str(cohorts["cache"]),
        out=str(setting.out / f"run_{variant.name}_s{seed}_{setting.steps}"),
        epochs=math.ceil(setting.steps / steps_per_epoch),
        crop=tuple(setting.crop),
        batch_size=setting.batch_size,
        lr=LR,
        val_fraction=0.0,
        seed=seed,
        workers=setting.workers,
        model=ModelConfig(base_channels=setting.base_channels, **variant.model),
        loss=LossConfig(**variant.loss),
        brain_mask=variant.brain_mask,
    )
    return replace(config, **variant.train)


def run_cga(variant: Variant, setting: Setting, seed: int, cohorts: dict) -> dict:
    """Train one CGA U-Net variant, predict the validation and test cases as ``cga predict --whole-box`` does
    (the whole brain box in one pass, the SAM's prototypes over the 128^3 window around each voxel), score."""
    config = train_config(variant, setting, seed, cohorts)
    steps = config.epochs * math.ceil(setting.train_cases / setting.batch_size)
    wall, cpu = time.perf_counter(), time.process_time()
    train(config, progress=False, overwrite=True)
    timing = {"train_min": (time.perf_counter() - wall) / 60, "train_cpu_min": (time.process_time() - cpu) / 60}
    scores = {}
    for split in ("val", "test"):
        pred_dir = Path(config.out) / f"pred_{split}"
        predict_folder(
            Path(config.out) / "last.pt",
            cohorts[split],
            pred_dir,
            brain_mask=variant.brain_mask,
            progress=False,
            log=lambda line: None,
            overwrite=True,  # the run was just replaced (train overwrite=True): so are its predictions
            whole_box=True,  # the path every recorded run was scored with; benchmarks.prediction_paths scores others
            precision="float32",  # as every recorded run, on any CPU
            prototype_field=SCORED_FIELD,
        )
        scores[split] = folder_scores(pred_dir, cohorts[split])
    return {"steps": steps, **timing, **scores, "prototype_field": SCORED_FIELD}


def run_peer(setting: Setting, seed: int, cohorts: dict) -> dict:
    """Train and apply the MONAI SegResNet peer (``benchmarks.monai_peer``) the same number of steps."""
    from benchmarks.monai_peer import predict_segresnet, train_segresnet

    wall, cpu = time.perf_counter(), time.process_time()
    model = train_segresnet(
        cohorts["train"],
        steps=setting.steps,
        crop=setting.crop,
        batch_size=setting.batch_size,
        base_channels=setting.base_channels,
        seed=seed,
        lr=LR,
    )
    timing = {"train_min": (time.perf_counter() - wall) / 60, "train_cpu_min": (time.process_time() - cpu) / 60}
    scores = {}
    for split in ("val", "test"):
        cases = [load_case(source) for source in find_cases(cohorts[split])]
        scores[split] = mean_scores([case_scores(predict_segresnet(model, c.image), c) for c in cases])
    return {"steps": setting.steps, **timing, **scores}


def load_results(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def code_version() -> str:
    """The commit the product code ran at (``git rev-parse``), ``+changes`` when its files differ from it."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        changed = subprocess.run([*git, "status", "--porcelain", "--", "cga_model", "cga_kernels", "csrc"],
                                 capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def measure(setting: Setting, progress: bool = True) -> list:
    """Every variant of ``setting.variants`` for every seed (runs already in ``results.jsonl`` are kept);
    returns the rows of this setting's step budget."""
    setting.out.mkdir(parents=True, exist_ok=True)
    cohorts = make_cohorts(setting)
    results = setting.out / "results.jsonl"
    done = {(r["variant"], r["seed"], r["steps_asked"]) for r in load_results(results)}
    # seed-major: an interrupted measurement still holds paired runs
    todo = [(v, s) for s in setting.seeds for v in setting.variants if (v, s, setting.steps) not in done]
    version = code_version()  # the code this process imported (close enough: it is read as the runs start)
    for name, seed in tqdm(todo, desc="runs", disable=not progress):
        variant = VARIANTS[name]
        row = run_peer(setting, seed, cohorts) if variant.peer else run_cga(variant, setting, seed, cohorts)
        row = {"variant": name, "seed": seed, "steps_asked": setting.steps, "code": version, **row}
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
    return [
        r
        for r in load_results(results)
        if r["steps_asked"] == setting.steps and r["variant"] in setting.variants and r["seed"] in setting.seeds
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="learning_out", help="folder for the cohorts, runs and results (resumable)")
    parser.add_argument("--steps", type=int, default=240, help="optimiser steps per run (the budget)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["cga", "no_sam", "segresnet"])
    parser.add_argument("--baseline", choices=tuple(VARIANTS), default="no_sam", help="the variant differences are to")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: cga train's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    setting = Setting(
        out=Path(args.out), steps=args.steps, seeds=tuple(args.seeds), variants=args.variants, workers=args.workers
    )
    rows = measure(setting)
    report = format_report(rows, baseline=args.baseline, help={n: v.help for n, v in VARIANTS.items()})
    print(report)
    (setting.out / "report.md").write_text(report + "\n")
    plot_report(rows, setting.out / "learning.png", baseline=args.baseline)


if __name__ == "__main__":
    main()
