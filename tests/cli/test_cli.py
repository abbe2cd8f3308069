"""The ``cga`` command line itself: every flag documented with its default, ``--version``, model flags from
ModelConfig."""

import argparse
import dataclasses
import subprocess
import sys

import pytest

import cga_model
from cga_model.cli import build_parser, config_from_args, main
from cga_model.nn.config import ModelConfig
from cga_model.nn.loss_config import LossConfig

COMMANDS = ("synth", "train", "predict", "evaluate")


def subparsers(parser: argparse.ArgumentParser) -> dict:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_a_help_line_and_its_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    sub = subparsers(build_parser())[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"cga {command} {action.option_strings or action.dest} has no help line"
        if action.option_strings:
            assert action.option_strings[0] in text
            shown = "(required)" if action.required else "(default: off)" if action.nargs == 0 else "(default:"
            assert shown in " ".join(sub._get_formatter()._get_help_string(action).split())
    if command == "train":
        assert "--epochs EPOCHS training epochs (poly learning rate over them) (default: 500)" in text
        assert "--dropout DROPOUT channel dropout after InitConv (training only) (default: 0.2)" in text
        assert "--no-sam turn off the supervised attention module" in text


def test_version_prints_the_package_version():
    out = subprocess.run([sys.executable, "-m", "cga_model", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"cga {cga_model.__version__}" and cga_model.__version__[0].isdigit()


def test_model_flags_are_the_model_config_fields():
    train = subparsers(build_parser())["train"]
    dests = {a.dest for a in train._actions}
    flagged = {f.name for f in dataclasses.fields(ModelConfig) if f.metadata["cli"]}
    assert flagged <= dests and "dropout" in flagged
    args = build_parser().parse_args(
        [
            "train",
            "--data",
            "d",
            "--out",
            "o",
            "--base-channels",
            "8",
            "--no-sam",
            "--dropout",
            "0.1",
            "--attention-rate",
            "4",
            "--intra-classes",
            "1",
            "3",
            "--mask-mode",
            "soft",
            "--norm",
            "in",
        ]
    )
    assert config_from_args(ModelConfig, args) == ModelConfig(
        base_channels=8, sam=False, dropout=0.1, attention_rate=4, intra_classes=(1, 3), mask_mode="soft", norm="in"
    )
    defaults = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert config_from_args(ModelConfig, defaults) == ModelConfig()
    assert config_from_args(LossConfig, defaults) == LossConfig()


def test_loss_flags_are_generated_from_loss_config():
    flags = ["--loss", "dice", "--attention-weight", "20", "--inter-weight", "0", "--inter-form", "official"]
    flags += ["--inter-start-epoch", "3", "--reverse-inter", "--dice-weight", "2"]
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", *flags])
    assert config_from_args(LossConfig, args) == LossConfig(
        segmentation="dice", dice_weight=2.0, attention_weight=20.0, inter_weight=0.0, inter_form="official",
        inter_start_epoch=3, inter_sign=-1.0,
    )  # fmt: skip


def test_off_by_default_model_switch_gets_a_positive_flag():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--update-gate"])
    assert config_from_args(ModelConfig, args).update_gate


def test_bad_model_flag_is_one_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "d", "--out", "o", "--attention-rate", "3"])
    assert exit_info.value.code == 2
    assert "cga train: error: argument --attention-rate: invalid choice: 3" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["synth"], ["train"], ["predict"], ["preprocess"], ["evaluate"]])
def test_help_loads_neither_torch_nor_the_kernels(command):
    script = (
        "import sys\nfrom cga_model.cli import main\n"
        f"try:\n    main({command + ['--help']!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'cga_kernels', 'triton') if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr[-500:]
    assert "usage: cga" in done.stdout
