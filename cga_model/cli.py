"""The ``cga`` command line: ``synth``, ``train``, ``predict``, ``evaluate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _synth(args) -> None:
    from .data.synth import synthesize_cohort

    ids = synthesize_cohort(args.out, cases=args.cases, seed=args.seed, shape=tuple(args.shape))
    print(f"wrote {len(ids)} cases to {args.out}")


def _train(args) -> None:
    from .training.loop import TrainConfig, train

    config = TrainConfig(
        data=args.data, out=args.out, epochs=args.epochs, crop=tuple(args.crop), batch_size=args.batch_size, lr=args.lr,
        val_fraction=args.val_fraction, seed=args.seed, workers=args.workers, device=args.device,
        base_channels=args.base_channels, norm=args.norm, sam=not args.no_sam, intra=not args.no_intra,
        intra_classes=args.intra_classes, inter=not args.no_inter, attention_rate=args.attention_rate,
        mask_mode=args.mask_mode, dropout=args.dropout, attention_weight=args.attention_weight,
        inter_weight=args.inter_weight, inter_form=args.inter_form, inter_start_epoch=args.inter_start_epoch,
        inter_sign=-1.0 if args.reverse_inter else 1.0,
    )
    _, record = train(config, resume=args.resume)
    print(f"done: {record}; checkpoints in {args.out}")


def _predict(args) -> None:
    from .inference.predict import predict_folder

    written = predict_folder(args.checkpoint, args.input, args.out, roi=tuple(args.roi), overlap=args.overlap, tta=args.tta,
                             save_probs=args.probs, device=args.device)
    print(f"wrote {len(written)} predictions (+ overlay PNGs) to {args.out}")


def _evaluate(args) -> None:
    from .evaluation.evaluate import evaluate_folder, format_table, plot_distribution, write_csv

    rows = evaluate_folder(args.pred, args.gt)
    out = Path(args.out)
    write_csv(rows, out)
    png = out.with_suffix(".png")
    plot_distribution(rows, png)
    print(format_table(rows))
    print(f"metrics: {out}\nplot: {png}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cga", description="CGA U-Net: synthesise, train, predict, evaluate (BraTS layout)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic BraTS-layout cohort")
    p.add_argument("out")
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=int, nargs=3, default=(64, 64, 48), metavar=("X", "Y", "Z"))
    p.set_defaults(func=_synth)

    p = sub.add_parser("train", help="train a CGA U-Net (use torchrun --nproc_per_node=N for DDP)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="run folder (last.pt, best.pt, metrics.jsonl, curves.png)")
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--crop", type=int, nargs=3, default=(128, 128, 128))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--norm", choices=("gn", "bn", "in", "sync_bn"), default="gn")
    p.add_argument("--no-sam", action="store_true", help="baseline U-Net")
    p.add_argument("--no-intra", action="store_true")
    p.add_argument("--no-inter", action="store_true")
    p.add_argument("--intra-classes", type=int, nargs="+", default=None)
    p.add_argument("--attention-rate", type=int, choices=(8, 4, 2), default=8)
    p.add_argument("--mask-mode", choices=("hard", "soft"), default="hard")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--attention-weight", type=float, default=1.0, help="1 = paper, 20 = released code")
    p.add_argument("--inter-weight", type=float, default=0.1)
    p.add_argument("--inter-form", choices=("paper", "official"), default="paper")
    p.add_argument("--inter-start-epoch", type=int, default=20)
    p.add_argument("--reverse-inter", action="store_true", help="'Baseline - Inter': minimise the inter-class distance")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="segment cases, writing <ID>.nii.gz and an overlay PNG")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="a case folder or a folder of case folders")
    p.add_argument("--out", required=True)
    p.add_argument("--roi", type=int, nargs=3, default=(128, 128, 128))
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--tta", action="store_true", help="average over the 8 axis flips")
    p.add_argument("--probs", action="store_true", help="also write <ID>_prob.nii.gz")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="BraTS metrics of predictions against ground truth")
    p.add_argument("--pred", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--out", required=True, help="CSV path (a PNG is written beside it)")
    p.set_defaults(func=_evaluate)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError) as err:
        print(f"cga {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
