"""``make demo``: synthesise a cohort, cache it, train a small CGA U-Net on the CPU, predict held-out cases, evaluate.

``python -m cga_model.demo [--out demo_out] [--epochs N]``. Training and held-out cases are
synthesised with different seeds, so the held-out cases are never seen in training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .data.preprocess import preprocess
from .data.synth import synthesize_cohort
from .data.workers import default_workers
from .evaluation.evaluate import evaluate_folder, format_table, plot_distribution, write_csv
from .inference.predict import predict_folder
from .nn.config import ModelConfig
from .nn.loss_config import LossConfig
from .training.loop import TrainConfig, train

# the training and held-out cohorts come from different seeds, so held-out cases are never seen in training
TRAIN_COHORT_SEED, TEST_COHORT_SEED, TRAINING_SEED = 1, 2, 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="folder for the cohorts, the run, predictions and metrics")
    parser.add_argument("--train-cases", type=int, default=20, help="synthetic training cases")
    parser.add_argument("--test-cases", type=int, default=8, help="synthetic held-out cases")
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 48), metavar=("X", "Y", "Z"), help="volume size")
    parser.add_argument("--epochs", type=int, default=24, help="training epochs")
    parser.add_argument("--base-channels", type=int, default=8, help="c of the CGA U-Net")
    parser.add_argument(
        "--no-cache", action="store_true", help="train from the raw NIfTI folders instead of a cga preprocess cache"
    )
    return parser


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    out, start = Path(args.out), time.time()

    print(f"[1/5] synthesising {args.train_cases} training and {args.test_cases} held-out cases")
    synthesize_cohort(out / "train", args.train_cases, seed=TRAIN_COHORT_SEED, shape=args.shape)
    synthesize_cohort(out / "test", args.test_cases, seed=TEST_COHORT_SEED, shape=args.shape)

    data = out / "train"
    if not args.no_cache:
        print("[2/5] caching the training cases (cga preprocess)")
        data = out / "cache"
        preprocess(out / "train", data, workers=default_workers(), rebuild=True)  # the cohort was just rewritten
    print(f"[3/5] training a CGA U-Net (base {args.base_channels} channels) for {args.epochs} epochs on the CPU")
    train_start = time.time()
    config = TrainConfig(
        data=str(data),
        out=str(out / "run"),
        epochs=args.epochs,
        crop=(48, 48, 48),
        batch_size=2,
        val_fraction=0.2,
        model=ModelConfig(base_channels=args.base_channels),
        loss=LossConfig(inter_start_epoch=args.epochs // 2),
        lr=3e-3,
        seed=TRAINING_SEED,
    )
    train(config)
    print(f"training took {time.time() - train_start:.0f} s")

    print("[4/5] predicting the held-out cases")
    predict_folder(out / "run" / "best.pt", out / "test", out / "pred", roi=tuple(args.shape))

    print("[5/5] evaluating")
    rows = evaluate_folder(out / "pred", out / "test")
    write_csv(rows, out / "metrics.csv")
    plot_distribution(rows, out / "metrics.png")
    print(format_table(rows))
    print(
        f"\nmetrics: {out / 'metrics.csv'}\n"
        f"plots:   {out / 'metrics.png'}, {out / 'run' / 'curves.png'}, {out / 'pred'}/*_overlay.png"
    )
    print(f"demo finished in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
