"""Refusals that must be one short line, early: command-line syntax, unsafe case IDs before any case is
written, checkpoints of other weights, failed checkpoint writes, ONNX models of another input, missing extras."""

import resource
import shutil
import signal
import sys

import numpy as np
import pytest
import torch

from cga_model.cli import main as cga
from cga_model.nn.checkpoint import load_checkpoint, save_checkpoint
from cga_model.nn.config import ModelConfig
from cga_model.nn.network import CGAUNet

FLAGS = ["--crop", "16", "16", "16", "--batch-size", "1", "--base-channels", "4", "--workers", "0"]
FLAGS += ["--val-fraction", "0"]
SHORT = 400  # characters: a refusal of a whole checkpoint is one clause, not its list of keys


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    from cga_model.data.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("cubes")
    synthesize_cohort(root, cases=3, seed=4, shape=(16, 16, 16), progress=False)
    return root


@pytest.fixture(scope="module")
def run(cubes, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cga(["train", "--data", str(cubes), "--out", str(out), "--epochs", "1", *FLAGS]) == 0
    return out


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("cga")]  # progress bars may precede it
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: ") and "Traceback" not in err, err
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "argv, command",
    [
        (["train", "--epochs", "2"], "cga train"),  # required flags missing
        (["train", "--data", "d", "--out", "o", "--bogus"], "cga train"),  # an unknown flag: the command's
        (["train", "--data", "d", "--out", "o", "--epochs", "x"], "cga train"),
        (["predict", "--input", "i", "--out", "o"], "cga predict"),
        ([], "cga"),
        (["nonsense"], "cga"),
    ],
)
def test_syntax_errors_are_one_line_without_the_usage_block(argv, command, capsys):
    with pytest.raises(SystemExit) as stopped:
        cga(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "usage:" not in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"{command}: error: "), err


def _unicode_last_case(cubes, tmp_path):
    """A copy of ``cubes`` whose last case (in sorted order) has a non-ASCII ID."""
    data = shutil.copytree(cubes, tmp_path / "data")
    last = sorted(p for p in data.iterdir() if p.is_dir())[-1]
    bad = last.with_name(last.name.replace("SYN", "SYNé"))
    last.rename(bad)
    for f in bad.iterdir():
        f.rename(f.with_name(f.name.replace(last.name, bad.name)))
    return data, bad.name


@pytest.mark.parametrize("command", ["preprocess", "train"])
def test_an_unsafe_case_id_is_refused_before_any_case_is_written(cubes, tmp_path, command, capsys):
    data, bad = _unicode_last_case(cubes, tmp_path)
    out = tmp_path / "out"
    extra = ["--epochs", "1", *FLAGS] if command == "train" else []
    assert cga([command, "--data", str(data), "--out", str(out), *extra]) == 2
    assert bad in _error_line(capsys, f"cga {command}") and not out.exists()


def _foreign_weights(run, tmp_path):
    """``run``'s last.pt with the weights of a base-8 network under its base-4 configuration."""
    state = load_checkpoint(run / "last.pt")
    wide = CGAUNet(ModelConfig(**{**state["config"]["model"], "base_channels": 8}))
    state["model"] = wide.state_dict()
    path = tmp_path / "foreign.pt"
    save_checkpoint(path, **state)
    return path


def test_a_checkpoint_with_other_weights_is_one_short_line(cubes, run, tmp_path, capsys):
    foreign = _foreign_weights(run, tmp_path)
    assert cga(["predict", "--checkpoint", str(foreign), "--input", str(cubes), "--out", str(tmp_path / "p")]) == 2
    line = _error_line(capsys, "cga predict")
    assert len(line) < SHORT and "weights of another shape" in line and str(foreign) in line, line
    assert cga(["export", "--checkpoint", str(foreign), "--out", str(tmp_path / "m.onnx")]) == 2
    assert len(_error_line(capsys, "cga export")) < SHORT
    resumed = shutil.copytree(run, tmp_path / "resumed")
    shutil.copy(foreign, resumed / "last.pt")
    assert cga(["train", "--data", str(cubes), "--out", str(resumed), "--epochs", "2", "--resume", *FLAGS]) == 2
    line = _error_line(capsys, "cga train")
    assert len(line) < SHORT and "last.pt" in line, line


def test_a_failed_checkpoint_write_names_the_path_and_keeps_the_old_file(tmp_path):
    """A write cut short (here by a file-size limit, as by a full disk) is an ``OSError`` naming the file and the
    space left, not torch's "[enforce fail at inline_container.cc]" alone; the file there stays as it was."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, weights=torch.zeros(4))
    before = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(OSError) as failed:
            save_checkpoint(path, weights=torch.zeros(100_000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    message = str(failed.value)
    assert str(path) in message and "MiB free" in message, message
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def _onnx_model(path, channels: int) -> None:
    """A 1x1x1 convolution from ``channels`` inputs to 4 class logits, in the input/output names of cga export."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = helper.make_tensor("W", TensorProto.FLOAT, [4, channels, 1, 1, 1], np.ones(4 * channels).tolist())
    free = ["B", "D", "H", "W"]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "W"], ["logits"])],
        "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [free[0], channels, *free[1:]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [free[0], 4, *free[1:]])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_an_onnx_model_of_another_input_is_refused_when_opened(cubes, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model = tmp_path / "two_channels.onnx"
    _onnx_model(model, channels=2)
    out = tmp_path / "p"
    assert cga(["predict", "--onnx", str(model), "--input", str(cubes), "--out", str(out)]) == 2
    line = _error_line(capsys, "cga predict")
    assert "2 channels" in line and "feeds 4" in line and not out.exists(), line


@pytest.mark.parametrize("module", ["onnxruntime", "onnx", "onnxscript"])
def test_a_missing_onnx_extra_names_the_install_not_an_internal_error(run, tmp_path, module, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError, as without the package
    if module == "onnxruntime":
        model = tmp_path / "m.onnx"
        model.write_bytes(b"")
        assert cga(["predict", "--onnx", str(model), "--input", str(tmp_path), "--out", str(tmp_path / "p")]) == 2
        line = _error_line(capsys, "cga predict")
    else:
        assert cga(["export", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
        line = _error_line(capsys, "cga export")
        assert not (tmp_path / "m.onnx").exists()
    assert module in line and "cga-unet[onnx]" in line, line


def test_preprocess_checks_every_case_before_writing_the_first(cubes, tmp_path, capsys):
    """A folder where the last case's T2 file should be: refused before any case is cached (not after the
    cases before it were written)."""
    data = shutil.copytree(cubes, tmp_path / "data")
    last = sorted(p for p in data.iterdir() if p.is_dir())[-1]
    t2 = last / f"{last.name}_t2.nii.gz"
    t2.unlink()
    t2.mkdir()
    out = tmp_path / "cache"
    assert cga(["preprocess", "--data", str(data), "--out", str(out), "--workers", "1"]) == 2
    assert "is a folder" in _error_line(capsys, "cga preprocess") and not out.exists()
