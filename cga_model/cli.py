"""The ``cga`` command line: ``synth``, ``train``, ``predict``, ``evaluate``, ``export``.

``cga <command> --help`` lists every flag with its help line and default; ``cga --version``
prints the package version. The model and loss flags of ``cga train`` are generated from the
fields of ``ModelConfig`` and ``LossConfig`` (``add_config_flags`` / ``config_from_args``), so
they cannot drift from the network's and the loss's options.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import __version__
from .cli_failures import OneLineParser, parse_arguments, run_command
from .data.layouts import LAYOUTS
from .nn.choices import PRECISIONS, PROTOTYPE_FIELDS
from .nn.config import ModelConfig
from .nn.loss_config import LossConfig
from .nnunet.commands import add_nnunet_commands
from .training.train_config import TrainConfig

DEFAULT_SYNTH_SHAPE = (64, 64, 48)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default: ``(default: X)``, ``(default: off)`` for switches,
    ``(required)`` for required flags."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text:
            return text
        if action.required:
            return f"{text} (required)"
        if action.nargs == 0 and not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            return f"{text} (default: off)"
        return super()._get_help_string(action)


def add_config_flags(parser: argparse.ArgumentParser, config_class, title: str) -> None:
    """One flag per field of the dataclass ``config_class`` marked ``cli`` in its metadata (``ModelConfig``,
    ``LossConfig``): ``--no-<name>`` for switches on by default, ``--<name>`` for those off by default, else
    ``--<name> VALUE`` with the field's ``type``, ``choices``, ``nargs`` and ``metavar``; ``flag`` and
    ``action``/``const``
    in the metadata override the flag's name and action."""
    group = parser.add_argument_group(title)
    for option in dataclasses.fields(config_class):
        meta = option.metadata
        if not meta.get("cli"):
            continue
        name = "--" + option.name.replace("_", "-")
        if "action" in meta:
            group.add_argument(
                meta["flag"], dest=option.name, action=meta["action"], const=meta["const"], default=option.default,
                help=meta["help"],
            )  # fmt: skip
        elif isinstance(option.default, bool):
            on = option.default
            group.add_argument(
                meta.get("flag", f"--no-{name[2:]}" if on else name),
                dest=option.name,
                action="store_false" if on else "store_true",
                help=f"turn {'off' if on else 'on'} {meta['help']}",
            )
        else:
            group.add_argument(
                meta.get("flag", name),
                dest=option.name,
                default=option.default,
                help=meta["help"],
                type=meta.get("type", type(option.default)),
                choices=meta.get("choices"),
                nargs=meta.get("nargs"),
                metavar=meta.get("metavar"),
            )


def config_from_args(config_class, args: argparse.Namespace, **fixed):
    """The ``config_class`` of parsed flags and ``fixed`` fields (fields without either keep their defaults)."""
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if f.metadata.get("cli")}
    return config_class(**flags, **fixed)


def _synth(args) -> None:
    from .data.synth import check_cohort_out, synthesize_cohort
    from .data.synth_full_size import FULL_SHAPE

    if args.full_size and args.shape is not None:
        raise ValueError(
            f"--shape {' '.join(map(str, args.shape))} and --full-size together: --full-size writes 240 240 155, "
            "drop one"
        )
    shape = FULL_SHAPE if args.full_size else tuple(args.shape or DEFAULT_SYNTH_SHAPE)
    if args.difficulty is not None and not args.full_size:
        raise ValueError(f"--difficulty {args.difficulty} needs --full-size (the small demo cases have one difficulty)")
    difficulty = (args.difficulty or "easy") if args.full_size else None
    check_cohort_out(args.out, args.layout, args.cases, args.seed, args.overwrite)
    ids = synthesize_cohort(
        args.out, cases=args.cases, seed=args.seed, shape=shape, layout=args.layout, difficulty=difficulty
    )
    print(f"wrote {len(ids)} {args.layout} cases to {args.out}")


def _preprocess(args) -> None:
    from .data.preprocess import preprocess

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    counts = preprocess(args.data, args.out, workers=args.workers, rebuild=args.rebuild, layout=args.layout)
    print(
        f"cache {args.out}: {counts['cases']} cases ({counts['written']} written, {counts['skipped']} already cached)"
    )


def _train(args) -> None:
    from .training.loop import train

    config = config_from_args(
        TrainConfig,
        args,
        data=args.data,
        out=args.out,
        model=config_from_args(ModelConfig, args),
        loss=config_from_args(LossConfig, args),
        layout=args.layout,
        brain_mask=not args.no_brain_mask,
    )
    _, record = train(config, resume=args.resume, overwrite=args.overwrite)
    saved = [name for name in ("last.pt", "best.pt") if (Path(args.out) / name).is_file()]
    print(f"done: {record}; checkpoints in {args.out}: {', '.join(saved)}")


def _predict(args) -> None:
    from .inference.predict import predict_folder
    from .nn.sliding_window import flips_of
    from .nn.whole_volume import parse_memory

    flips_of(args.tta)  # refuses a --tta outside 0..8 before any work
    written = predict_folder(
        args.onnx or args.checkpoint,
        args.input,
        args.out,
        layout=args.layout,
        roi=None if args.roi is None else tuple(args.roi),
        overlap=args.overlap,
        tta=args.tta,
        whole_box=args.whole_box or None,  # None: the network's default path
        memory_limit=None if args.memory_limit is None else parse_memory(args.memory_limit),
        precision=args.precision,
        save_probs=args.probs,
        brain_mask=not args.no_brain_mask,
        device=args.device,
        overwrite=args.overwrite,
        allow_missing=args.allow_missing,
        prototype_field=args.prototype_field,
    )
    print(f"wrote {len(written)} predictions (+ overlay PNGs) to {args.out}")


def _evaluate(args) -> None:
    from .data.file_safety import check_output
    from .evaluation.evaluate import evaluate_folder, format_table, plot_distribution, write_csv

    out = Path(args.out)
    png = out.with_suffix(".png")
    check_output(out, inputs=(args.pred, args.gt), overwrite=args.overwrite, will_write=(out, png))
    rows = evaluate_folder(
        args.pred,
        args.gt,
        layout=args.layout,
        metric_sets=tuple(m.strip() for m in args.metrics.split(",") if m.strip()),
        allow_missing=args.allow_missing,
    )
    write_csv(rows, out)
    plot_distribution(rows, png)
    print(format_table(rows))
    print(f"metrics: {out}\nplot: {png}")


def _command(sub, name: str, *, summary: str, run) -> argparse.ArgumentParser:
    """A sub-command whose parsed arguments go to ``run``."""
    parser = sub.add_parser(name, help=summary, formatter_class=HelpFormatter)
    parser.set_defaults(func=run)
    return parser


def _add_required(parser: argparse.ArgumentParser, flags: dict) -> None:
    """Required flags, ``{flag: help line}``."""
    for flag, text in flags.items():
        parser.add_argument(flag, required=True, help=text)


def _add_switches(parser: argparse.ArgumentParser, flags: dict) -> None:
    """Switches, off unless given, ``{flag: help line}``."""
    for flag, text in flags.items():
        parser.add_argument(flag, action="store_true", help=text)


def _add_layout(parser: argparse.ArgumentParser, what: str) -> None:
    """``--layout NAME``: force the dataset layout of ``what`` instead of detecting it from the file names."""
    parser.add_argument(
        "--layout",
        choices=tuple(LAYOUTS),
        default=None,
        help=f"layout of {what} (default: detected from the file names and the cohort code of the case IDs, "
        "BraTS-GLI/SSA/MEN/GoAT/MET/PED/MEN-RT; brats2024 shares brats2023's GLI IDs; a layout that reads "
        "labels otherwise than the IDs' cohort is refused)",
    )


def _add_brain_mask(parser: argparse.ArgumentParser) -> None:
    _add_switches(
        parser,
        {
            "--no-brain-mask": "segment the whole volume as it is, for images that are not skull-stripped; without it, "
            "voxels zero in every modality (outside a skull-stripped brain) are background and only the brain's box "
            "is segmented",
        },
    )


def _add_synth(p) -> None:
    """The flags of ``cga synth``."""
    from .data.synth import FULL_SIZE_GENERATORS

    p.add_argument("out", help="folder for the cases, in the files of --layout")
    p.add_argument(
        "--layout",
        choices=tuple(LAYOUTS),
        default="brats2021",
        help="files and labels to write: any layout of the choices, each cohort with its own labels (brats-ped: "
        "with cysts; brats-men-rt: T1c and GTV only; brats2024 and brats-met: with resection cavities)",
    )
    p.add_argument("--cases", type=int, default=10, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="seed of the cohort (same seed, same cases)")
    _add_switches(p, {"--overwrite": "replace the cases of the same cohort (layout, seed, count) in the folder"})
    p.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help=f"volume size in voxels, 1 mm (default: {' '.join(map(str, DEFAULT_SYNTH_SHAPE))})",
    )
    _add_switches(
        p,
        {
            "--full-size": "realistic 240x240x155 cases: a brain of 1.5-1.9 M voxels in a zero background, gliomas of "
            "0.5-3 %% of it with the three nested sub-regions (to judge training as on real scans)",
        },
    )
    p.add_argument(
        "--difficulty",
        choices=tuple(FULL_SIZE_GENERATORS),
        default=None,
        help="with --full-size: easy = uniform tissues and one spheroid-like glioma; hard = textured, overlapping "
        "levels, mimics (vessels, plexus, dura, white-matter hyperintensities), 3-6 mm slices, gamma, strong bias, "
        "2-6 %% noise, four tumour kinds, multifocal disease, mass effect (default: easy)",
    )


def _add_preprocess(p) -> None:
    """The flags of ``cga preprocess``."""
    from .data.workers import default_workers

    _add_required(
        p,
        {
            "--data": "dataset folder of any layout (BraTS 2021/2023/2024 case folders, an MSD Task01 folder)",
            "--out": "cache folder (new, empty, or a cache to finish); pass it to cga train --data",
        },
    )
    p.add_argument("--workers", type=int, default=default_workers(), help="parallel processes (one case each)")
    _add_switches(p, {"--rebuild": "clear an existing cache of other settings, format or data and rebuild it"})
    _add_layout(p, "--data")


def _add_train(p) -> None:
    """The flags of ``cga train``."""
    _add_required(
        p,
        {
            "--data": "dataset folder of any layout, or a cache made by cga preprocess",
            "--out": "run folder (last.pt, best.pt, metrics.jsonl, curves.png)",
        },
    )
    add_config_flags(p, TrainConfig, "training options (TrainConfig)")
    _add_run_folder_flags(p)
    _add_layout(p, "--data (the network's class count follows its label scheme: 5 with a resection cavity)")
    add_config_flags(p, ModelConfig, "model options (ModelConfig)")
    _add_brain_mask(p)
    add_config_flags(p, LossConfig, "loss options (LossConfig)")


def _add_run_folder_flags(p) -> None:
    """What ``cga train`` does with an existing run folder."""
    _add_switches(
        p,
        {
            "--resume": "continue from OUT/last.pt",
            "--overwrite": "start afresh in an --out folder that holds an earlier run (replacing it)",
        },
    )


def _add_predict(p) -> None:
    """The flags of ``cga predict``."""
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a best.pt or last.pt of cga train (this or --onnx is required)")
    model.add_argument("--onnx", help="a model.onnx of cga export, run by ONNX Runtime on the CPU instead of PyTorch")
    _add_required(
        p,
        {
            "--input": "a case folder or a folder of case folders",
            "--out": "folder for <ID>.nii.gz and <ID>_overlay.png",
        },
    )
    _add_inference_path(p)
    p.add_argument(
        "--tta",
        type=int,
        nargs="?",
        const=8,
        default=0,
        metavar="N",
        help="average over N axis flips, batched (0: none; 1-8 take none, X, Y, Z, XY, XZ, YZ, XYZ in that order; "
        "--tta alone: all 8)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the network: bfloat16 (autocast) or float32; auto: bfloat16 where the device has "
        "bfloat16 units (AVX512-BF16 or AMX CPUs, GPUs), float32 elsewhere and for --onnx",
    )
    p.add_argument(
        "--prototype-field",
        choices=PROTOTYPE_FIELDS,
        help="where the SAM pools its class prototypes: window = over the 128^3 window around each voxel, so one "
        "pass over the box gives what 128^3 sliding windows give; crop = tiles the size of the training crop; "
        "input = over each network input, the whole box or a window (the paper's form; the only one an --onnx "
        "model has) (default: window for a checkpoint, input for an --onnx model)",
    )
    _add_prediction_files(p)
    _add_brain_mask(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_layout(p, "--input; predictions are written in its file names and label values")


def _add_inference_path(p) -> None:
    """``cga predict``'s choice of path through the network: windows, the whole box, the memory budget."""
    p.add_argument(
        "--roi",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="sliding windows of this size (default: the whole brain box in one pass for a BatchNorm network, "
        "128 128 128 windows cut to the box for a GroupNorm or InstanceNorm one; the fewest windows that "
        "fit --memory-limit when those do not)",
    )
    _add_switches(
        p,
        {
            "--whole-box": "run the whole brain box through the network in one pass when it fits --memory-limit, "
            "whatever its normalisation (the default for a BatchNorm network, cga train's default; a GroupNorm "
            "network scores lower Dice on held-out hard cases that way than with its default windows)",
        },
    )
    p.add_argument(
        "--overlap",
        type=float,
        help="sliding windows sharing this fraction of a window with their neighbours (default: 0.5 with --roi)",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory the network's activations may take, e.g. 800MB or 4GB (default: half the free memory)",
    )


def _add_prediction_files(p) -> None:
    """``cga predict``'s optional probability maps, and whether files already in ``--out`` may be replaced."""
    _add_switches(
        p,
        {
            "--probs": "also write <ID>_prob.nii.gz",
            "--overwrite": "replace the <ID>.nii.gz, PNG (and prob) files --out holds",
            "--allow-missing": "segment a case that lacks some of the model's sequences with them zero-filled (named "
            "in the log and the output's header description); without it such a case is refused",
        },
    )


def _add_evaluate(p) -> None:
    """The flags of ``cga evaluate``."""
    _add_required(
        p,
        {
            "--pred": "folder of <ID>.nii.gz predictions (in the label values of the ground truth's layout)",
            "--gt": "dataset folder with the ground-truth segmentations, any layout",
            "--out": "CSV path ending in .csv (a PNG is written beside it)",
        },
    )
    _add_switches(
        p,
        {
            "--allow-missing": "score a ground-truth case without a prediction as an empty (all background) prediction "
            "instead of refusing",
            "--overwrite": "replace an existing --out CSV and the PNG beside it",
        },
    )
    _add_layout(p, "--gt")
    p.add_argument(
        "--metrics",
        default="legacy,lesionwise",
        help="comma-separated: legacy (Dice, HD95, HD100, sensitivity, specificity per region) and/or lesionwise "
        "(BraTS 2023+ lesion-wise Dice/HD95, panoptic quality and lesion counts, as brats-evaluation computes them)",
    )


def _export(args) -> None:
    from .inference.export import export_onnx, export_program

    suffix = Path(args.out).suffix.lower()
    if suffix == ".pt2":
        print(
            f"wrote {export_program(args.checkpoint, args.out, overwrite=args.overwrite)} "
            "(torch.export program with the cga:: ops)"
        )
        return
    if suffix != ".onnx":
        raise ValueError(f"--out {args.out}: its suffix picks the format, .onnx (ONNX) or .pt2 (torch.export program)")
    done = export_onnx(args.checkpoint, args.out, overwrite=args.overwrite)
    print(
        f"wrote {done.path} (outputs: {', '.join(done.outputs)}); onnx.checker passed; ONNX Runtime logits within "
        f"{done.max_abs_diff:.1e} of PyTorch on a random {tuple(done.checked_shape)} input"
    )


def _add_export(p) -> None:
    """The flags of ``cga export``."""
    _add_required(
        p,
        {
            "--checkpoint": "a best.pt or last.pt of cga train",
            "--out": "model.onnx (dynamic batch and sizes, multiples of 8, at least 16) or model.pt2",
        },
    )
    _add_switches(p, {"--overwrite": "replace an existing --out file"})


def _explain(args) -> None:
    from .inference.explain import explain_folder

    written = explain_folder(
        args.checkpoint,
        args.input,
        args.out,
        layout=args.layout,
        roi=tuple(args.roi),
        channels=args.channels,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {len(written)} PNGs (attention per class, features before/after the intra-class update) to {args.out}"
    )


def _add_explain(p) -> None:
    """The flags of ``cga explain``."""
    _add_required(
        p,
        {
            "--checkpoint": "a best.pt or last.pt of cga train (a CGA U-Net with its SAM)",
            "--input": "a case folder or a folder of case folders",
            "--out": "folder for <ID>_attention.png and <ID>_features.png",
        },
    )
    p.add_argument(
        "--roi",
        type=int,
        nargs=3,
        default=(128, 128, 128),
        metavar=("X", "Y", "Z"),
        help="window around the tumour (multiples of 8)",
    )
    p.add_argument("--channels", type=int, default=4, help="feature channels shown: those the update changes most")
    _add_layout(p, "--input")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_switches(p, {"--overwrite": "replace existing PNGs"})


def _confidence(args) -> None:
    from .inference.confidence import confidence_report, format_table, parse_models

    csv_path, png, rows = confidence_report(
        parse_models(args.model),
        args.out,
        input_path=args.input,
        layout=args.layout,
        roi=tuple(args.roi),
        overlap=args.overlap,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(format_table(rows))
    print(f"shares: {csv_path}\nchart: {png}")


def _add_confidence(p) -> None:
    """The flags of ``cga confidence``."""
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=SOURCE",
        help="repeatable; SOURCE: a folder of <ID>_prob.nii.gz (cga predict --probs) or a checkpoint / .onnx run "
        "on --input",
    )
    _add_required(p, {"--out": "folder for confidence.csv and confidence.png"})
    p.add_argument(
        "--input", help="the cases: needed for a model file; restricts the count to the brain (default: every voxel)"
    )
    p.add_argument(
        "--roi", type=int, nargs=3, default=(128, 128, 128), metavar=("X", "Y", "Z"), help="sliding-window size"
    )
    p.add_argument(
        "--overlap", type=float, default=0.5, help="overlap of neighbouring windows, as a fraction of the window"
    )
    _add_layout(p, "--input, and whose classes the probability maps hold")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_switches(p, {"--overwrite": "replace an existing confidence.csv/.png"})


def _commands() -> tuple:
    """One row per command: its name, its line in ``cga --help``, what runs it, what adds its flags (looked up when
    the parser is built, so a replaced runner is the one that runs)."""
    return (
        (
            "synth",
            "write a synthetic cohort in a dataset layout (BraTS 2021/2023/2024, MSD Task01)",
            _synth,
            _add_synth,
        ),
        (
            "preprocess",
            "cache a dataset for fast training: brain crop, z-score, memory-mappable arrays",
            _preprocess,
            _add_preprocess,
        ),
        ("train", "train a CGA U-Net (use torchrun --nproc_per_node=N for DDP)", _train, _add_train),
        ("predict", "segment cases, writing <ID>.nii.gz and an overlay PNG", _predict, _add_predict),
        ("evaluate", "BraTS metrics of predictions against ground truth", _evaluate, _add_evaluate),
        ("export", "export a checkpoint to ONNX (.onnx) or a torch.export program (.pt2)", _export, _add_export),
        (
            "explain",
            "attention maps per class and features before/after the intra-class update (paper Figs. 6-7)",
            _explain,
            _add_explain,
        ),
        (
            "confidence",
            "share of voxel probabilities in [0,0.1], (0.1,0.5], (0.5,0.9], (0.9,1] per region (paper Fig. 8)",
            _confidence,
            _add_confidence,
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cga",
        description="CGA U-Net: synthesise, train, predict, evaluate (BraTS layout)",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, summary, run, add_flags in _commands():
        add_flags(_command(sub, name, summary=summary, run=run))
    add_nnunet_commands(sub, HelpFormatter)
    return parser


def main(argv=None) -> int:
    """Parse and run a command: 0, or 2 after a one-line ``cga <command>: error: ...`` (``cli_failures``)."""
    return run_command(parse_arguments(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
