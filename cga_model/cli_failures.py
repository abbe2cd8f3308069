"""How a ``cga`` command fails: argument checks before any work, one-line errors, no empty folders left.

``run_command(args)`` runs a parsed command. First ``check_arguments`` refuses values that need
no data to be known wrong (``--epochs 0``, ``--overlap 1``, ``--device cuda`` without a GPU,
``synth --cases -2``, an ``--out`` that is a file, ...). Every failure prints one line
``cga <command>: error: <message>`` to stderr and returns exit status 2 (``--roi`` must be three
positive multiples of 8, ``--overlap`` in [0, 1)):

- expected errors (``ValueError`` and its ``DataError``, ``OSError`` such as a missing or
  unwritable path, ``RuntimeError`` such as a diverged run) print their message;
- an error marked ``reported_elsewhere`` (a ``torchrun`` rank stopped because another rank failed, which
  prints its own line) prints nothing and returns 2;
- any other exception is a bug in cga: it prints ``internal error (<type>: <message>)`` with a
  request to report it, also exit status 2; ``CGA_DEBUG=1`` re-raises it with its traceback.

Command-line syntax errors (an unknown flag, a missing or malformed value) are the same one line with exit
status 2, without argparse's usage block (``OneLineParser``, ``parse_arguments``): ``cga <command> --help``
lists the flags. A missing optional package (``onnxruntime``, ``nnunetv2``, ...) names the extra that
installs it (``OPTIONAL_EXTRAS``), not an internal error.

Ctrl-C (``KeyboardInterrupt``, or an error raised from one, as an extension imported at that moment raises)
prints one line ``cga <command>: interrupted`` (for ``train``, with how to continue with ``--resume``) and
returns exit status 130. An output folder the failed or
interrupted command created and left empty is removed again.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .data.file_safety import check_name_lengths
from .flag_checks import window

EXPECTED_ERRORS = (ValueError, OSError, RuntimeError)
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT)
FOLDER_OUTPUTS = (
    "synth",
    "preprocess",
    "train",
    "predict",
    "explain",
    "confidence",
    "nnunet-restore",
)  # commands whose --out is a folder
DEBUG_VARIABLE = "CGA_DEBUG"
OPTIONAL_EXTRAS = {  # top-level module -> the pip extra of cga-unet that installs it (pyproject.toml)
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
    "monai": "monai",
    "nnunetv2": "nnunet",
    "brats": "brats",
    "panoptica": "brats",
    "triton": "triton",
}


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose syntax errors are one line ``<prog>: error: <message>`` on stderr, exit
    status 2, with no usage block; its sub-command parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} ({self.prog} --help lists the flags)\n")


def parse_arguments(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with unrecognised arguments reported by the sub-command's parser
    (``cga train: error: unrecognized arguments: ...``) rather than the top-level ``cga``'s."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        owner = commands.choices.get(getattr(args, "command", None), parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _check_ranges(args) -> None:
    """Numbers whose valid range is known without any data."""
    if getattr(args, "epochs", 1) < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    overlap = getattr(args, "overlap", None)
    if overlap is not None and not 0.0 <= overlap < 1.0:  # None: predict's default (no windows forced)
        raise ValueError(f"--overlap must be in [0, 1) (a fraction of the window shared by neighbours), got {overlap}")
    if getattr(args, "roi", None) is not None:  # None: predict's default (the brain box, or windows that fit)
        window("--roi", args.roi)
    if args.command == "synth":
        if args.cases < 1:
            raise ValueError(f"--cases must be at least 1, got {args.cases}")
        if args.shape is not None:  # None: the default shape, or --full-size
            from .data.synth import check_shape

            check_shape(args.shape)


def _check_device(args) -> None:
    device = str(getattr(args, "device", "cpu") or "cpu")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: no CUDA GPU is available to this PyTorch ({torch.__version__}); use --device cpu"
            )


def _check_out(args) -> None:
    out = getattr(args, "out", None)
    if out is None:
        return
    check_name_lengths(out)
    out = Path(out)
    if args.command in FOLDER_OUTPUTS and out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, expected a folder (a new one, or the folder of an earlier run)")
    if args.command == "evaluate":
        if out.suffix.lower() != ".csv":
            raise ValueError(f"--out {out}: expected a .csv path (the box plot is written beside it with .png)")
        if out.is_dir():
            raise ValueError(f"--out {out} is a folder, expected a .csv file path")
        if not out.parent.is_dir():
            raise ValueError(f"--out {out}: its folder {out.parent} does not exist; create it first")


def check_arguments(args) -> None:
    """Refuse argument values known to be wrong before any data is read (raises ``ValueError``)."""
    _check_ranges(args)
    _check_device(args)
    _check_out(args)


def _created_folder(args):
    """``args.out`` when it is a folder output that does not exist yet (removed again if left empty)."""
    out = getattr(args, "out", None)
    if out is None or args.command not in FOLDER_OUTPUTS or Path(out).exists():
        return None
    return Path(out)


def _remove_if_empty(folder) -> None:
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _resume_hint(args) -> str:
    """How to continue an interrupted ``cga train`` from the last epoch it saved (empty for other commands)."""
    last = Path(getattr(args, "out", None) or ".") / "last.pt"
    if args.command != "train" or not last.is_file():
        return ""
    return f"; {last} holds the last saved epoch: run the same command with --resume (not --overwrite) to continue"


def _missing_package(err: ModuleNotFoundError) -> str:
    """The line for a missing module: an optional extra names its ``pip install``; any other is a broken install."""
    module = (err.name or "").split(".")[0]
    if module in OPTIONAL_EXTRAS:
        extra = OPTIONAL_EXTRAS[module]
        return (
            f"this needs the optional package {module}, which is not installed: pip install 'cga-unet[{extra}]' "
            f"(from a clone: pip install --no-build-isolation -e '.[{extra}]')"
        )
    return f"the module {err.name} is missing: the installation of cga-unet is incomplete; reinstall it ({err})"


def _raised_by_ctrl_c(err: BaseException) -> bool:
    """Whether ``err`` was raised from a ``KeyboardInterrupt`` (its ``__cause__`` or ``__context__`` chain): a
    pybind11 extension (matplotlib's) interrupted while it is imported raises ``ImportError: initialization
    failed`` from the interrupt."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _interrupted(args, created) -> int:
    """Ctrl-C: remove the folder the command created if still empty, print the one line, return 130."""
    _remove_if_empty(created)
    print(f"cga {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
    return INTERRUPTED


def run_command(args) -> int:
    """Run ``args.func(args)`` after ``check_arguments``; returns the exit status: 0, 2 after a one-line error,
    130 after Ctrl-C (one line ``cga <command>: interrupted``)."""
    created = None
    try:
        check_arguments(args)
        created = _created_folder(args)
        args.func(args)
        return 0
    except EXPECTED_ERRORS as err:
        if getattr(err, "reported_elsewhere", False):  # a torchrun rank stopped by another's error: it printed it
            return 2
        message = _one_line(err)
    except ModuleNotFoundError as err:
        message = _missing_package(err)
    except Exception as err:  # a bug in cga: say so in one line, keep the traceback behind CGA_DEBUG
        if _raised_by_ctrl_c(err):
            return _interrupted(args, created)
        if os.environ.get(DEBUG_VARIABLE):
            raise
        message = (
            f"internal error ({type(err).__name__}: {_one_line(err)}); please report it with the command line "
            f"(set {DEBUG_VARIABLE}=1 to see the traceback)"
        )
    except KeyboardInterrupt:
        return _interrupted(args, created)
    _remove_if_empty(created)
    print(f"cga {args.command}: error: {message}", file=sys.stderr)
    return 2
