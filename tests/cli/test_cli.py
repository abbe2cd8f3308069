"""The ``cga`` command line itself: every flag documented with its default, ``--version``, model flags from ModelConfig."""

import argparse
import dataclasses
import subprocess
import sys

import pytest

import cga_model
from cga_model.cli import build_parser, main, model_config_from_args
from cga_model.nn.config import ModelConfig

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
    assert model_config_from_args(args) == ModelConfig(
        base_channels=8, sam=False, dropout=0.1, attention_rate=4, intra_classes=(1, 3), mask_mode="soft", norm="in"
    )
    defaults = build_parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert model_config_from_args(defaults) == ModelConfig()


def test_bad_model_flag_is_one_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "d", "--out", "o", "--attention-rate", "3"])
    assert exit_info.value.code == 2
    assert "cga train: error: argument --attention-rate: invalid choice: 3" in capsys.readouterr().err
