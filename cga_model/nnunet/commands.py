"""``cga nnunet-convert``, ``cga nnunet-train`` and ``cga nnunet-restore`` (added to the ``cga`` parser by
``add_nnunet_commands``)."""

from __future__ import annotations

import argparse
import os
import sys
from unittest import mock

from ..data.layouts import LAYOUTS
from . import with_trainer_dir

TRAINER = "nnUNetTrainerCGA"


class RefusedArguments(Exception):
    """nnU-Net's argument parser refused the pass-through options (raised instead of its usage text and exit)."""


def _refuse(parser, message):
    raise RefusedArguments(message)


def _convert(args) -> None:
    from .convert import convert_dataset

    info = convert_dataset(args.data, args.out, target=args.target, layout=args.layout, overwrite=args.overwrite)
    print(f"wrote {info['numTraining']} training cases ({args.target}: {list(info['labels'])}) to {args.out}")


def _restore(args) -> None:
    from .restore import restore_predictions

    written = restore_predictions(args.predictions, args.out, dataset=args.dataset, overwrite=args.overwrite)
    print(f"wrote {len(written)} predictions in the cohort's label values to {args.out}")


def training_argv(args) -> list:
    """nnU-Net's ``nnUNetv2_train`` arguments: the positionals, the pass-through options, ``-tr nnUNetTrainerCGA``
    unless another trainer is named."""
    options = list(args.options)
    if "-tr" not in options:
        options += ["-tr", TRAINER]
    return [args.dataset, args.configuration, args.fold, *options]


def _train(args) -> None:
    import torch

    try:
        import nnunetv2  # noqa: F401
    except ModuleNotFoundError as err:
        raise RuntimeError("nnU-Net v2 is not installed: pip install 'cga-unet[nnunet]'") from err

    argv = training_argv(args)
    if "-device" not in argv and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device here and nnU-Net trains on cuda by default: pass -device cpu")
    os.environ["nnUNet_extTrainer"] = with_trainer_dir()["nnUNet_extTrainer"]
    from nnunetv2.run.run_training import run_training_entry

    from .lookup import nnunet_trainer_lookup

    saved = sys.argv
    sys.argv = ["nnUNetv2_train", *argv]
    try:
        with nnunet_trainer_lookup(), mock.patch.object(argparse.ArgumentParser, "error", _refuse):
            run_training_entry()
    except RefusedArguments as err:
        raise RuntimeError(f"nnUNetv2_train refused the arguments {' '.join(argv)}: {err}") from None
    except (AssertionError, KeyError, OSError, TypeError, ValueError, RuntimeError) as err:  # nnU-Net's input errors
        raise RuntimeError(f"nnU-Net: {type(err).__name__}: {' '.join(str(err).split())}") from err
    finally:
        sys.argv = saved


def add_nnunet_commands(sub, formatter_class) -> None:
    """Add ``nnunet-convert``, ``nnunet-train`` and ``nnunet-restore`` to the ``cga`` subparsers ``sub``."""
    p = sub.add_parser(
        "nnunet-convert", help="write a dataset folder in nnU-Net v2's raw format", formatter_class=formatter_class
    )
    p.add_argument(
        "--data",
        required=True,
        help="dataset folder in any layout cga reads (BraTS 2021, 2023-2025 cohorts: GLI, SSA, MEN, GoAT, MET, PED, "
        "MEN-RT; MSD task)",
    )
    p.add_argument("--out", required=True, help="nnU-Net raw dataset folder to create, $nnUNet_raw/DatasetXXX_Name")
    p.add_argument(
        "--target",
        choices=("regions", "labels"),
        default="regions",
        help="regions: the cohort's regions with sigmoids (nnU-Net's BraTS recipe; GLI WT/TC/ET(/RC), PED's own, "
        "MEN-RT's GTV as a label); labels: one softmax class per label",
    )
    p.add_argument(
        "--layout",
        default=None,
        choices=tuple(LAYOUTS),
        help="dataset layout (default: detected from the file names and the cohort code of the case IDs)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=_convert)
    p = sub.add_parser(
        "nnunet-train",
        help="nnUNetv2_train with nnUNetTrainerCGA (sets nnUNet_extTrainer)",
        formatter_class=formatter_class,
    )
    p.add_argument("dataset", help="nnU-Net dataset name or ID (e.g. 501 or Dataset501_BraTS)")
    p.add_argument("configuration", help="nnU-Net configuration, e.g. 3d_fullres")
    p.add_argument("fold", help="fold 0-4 or 'all'")
    p.add_argument(
        "options", nargs=argparse.REMAINDER, help="further nnUNetv2_train options, e.g. -device cpu --c (default: none)"
    )
    p.set_defaults(func=_train)
    _add_restore(sub, formatter_class)


def _add_restore(sub, formatter_class) -> None:
    """Add ``nnunet-restore`` to the ``cga`` subparsers ``sub``."""
    p = sub.add_parser(
        "nnunet-restore",
        help="nnU-Net's predictions in the cohort's own label values (from dataset.json's cga_source)",
        formatter_class=formatter_class,
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="the dataset folder cga nnunet-convert wrote, or its dataset.json (default: the dataset.json "
        "nnUNetv2_predict copies into --predictions)",
    )
    p.add_argument("--predictions", required=True, help="folder of nnU-Net's predictions (nnUNetv2_predict -o)")
    p.add_argument("--out", required=True, help="folder for the restored predictions (same file names)")
    p.add_argument("--overwrite", action="store_true", help="replace files of the same names in --out")
    p.set_defaults(func=_restore)
