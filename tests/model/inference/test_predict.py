"""cga predict's segmentation flags: the path choice and its log line, --tta N, --precision, --memory-limit."""

import nibabel as nib
import numpy as np
import pytest
import torch

from cga_model import CGAUNet
from cga_model.cli import build_parser
from cga_model.cli import main as cga
from cga_model.inference.predict import predict_folder
from cga_model.nn.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A base-4 checkpoint and two small synthetic cases: (checkpoint, input folder, root)."""
    root = tmp_path_factory.mktemp("predict")
    assert cga(["synth", str(root / "data"), "--cases", "2", "--shape", "40", "40", "32"]) == 0
    torch.manual_seed(0)
    model = CGAUNet(base_channels=4)
    save_checkpoint(root / "best.pt", model=model.state_dict(), config={"model": model.config.to_dict()})
    return root / "best.pt", root / "data", root


def _labels(folder):
    return {p.name: np.asarray(nib.load(p).dataobj) for p in sorted(folder.glob("*.nii.gz")) if "_prob" not in p.name}


def test_the_log_says_which_path_and_why(setup):
    checkpoint, data, root = setup
    lines = []
    predict_folder(checkpoint, data, root / "whole", progress=False, log=lines.append)
    assert len(lines) == 2 and all("whole box in one pass (fits the memory budget)" in line for line in lines)
    lines.clear()
    predict_folder(checkpoint, data, root / "tiny", progress=False, log=lines.append, memory_limit=2_000_000)
    assert all("windows of" in line and "does not fit" in line and "budget 2 MB" in line for line in lines)
    whole, tiny = _labels(root / "whole"), _labels(root / "tiny")
    assert whole.keys() == tiny.keys() and len(whole) == 2


def test_probabilities_and_labels_agree(setup):
    checkpoint, data, root = setup
    predict_folder(checkpoint, data, root / "probs", progress=False, save_probs=True, log=lambda line: None)
    predict_folder(checkpoint, data, root / "labels", progress=False, log=lambda line: None)
    with_probs, labels = _labels(root / "probs"), _labels(root / "labels")
    assert with_probs.keys() == labels.keys() and all(np.array_equal(with_probs[k], labels[k]) for k in labels)
    probs = sorted((root / "probs").glob("*_prob.nii.gz"))
    assert len(probs) == 2 and np.asarray(nib.load(probs[0]).dataobj).dtype == np.float32


def test_cli_flags(setup, capsys):
    args = build_parser().parse_args(["predict", "--checkpoint", "c", "--input", "i", "--out", "o", "--tta"])
    assert args.tta == 8 and args.roi is None and args.overlap is None and args.precision == "float32"
    args = build_parser().parse_args(["predict", "--checkpoint", "c", "--input", "i", "--out", "o", "--tta", "3"])
    assert args.tta == 3
    checkpoint, data, root = setup
    common = ["predict", "--checkpoint", str(checkpoint), "--input", str(data)]
    assert cga(common + ["--out", str(root / "cli"), "--tta", "2", "--precision", "bfloat16"]) == 0
    assert "whole box in one pass" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "roi"), "--roi", "16", "16", "16"]) == 0
    assert "windows of 16x16x16 (--roi/--overlap given)" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "bad"), "--tta", "9"]) == 2
    assert "--tta must be a number of flips from 0 to 8, got 9" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "bad"), "--memory-limit", "lots"]) == 2
    assert "--memory-limit 'lots'" in capsys.readouterr().err
