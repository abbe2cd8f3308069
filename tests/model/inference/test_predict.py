"""cga predict's segmentation flags: the path choice and its log line, --tta N, --precision, --memory-limit,
--prototype-field, and --allow-missing (absent sequences zero-filled, named in the log and the header; refused
without it)."""

import nibabel as nib
import numpy as np
import pytest
import torch

from cga_model import CGAUNet
from cga_model.cli import build_parser
from cga_model.cli import main as cga
from cga_model.data.synth import synthesize_cohort
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
    reason = "whole box in one pass (no normalisation of the network depends on the field of view, fits the memory"
    assert len(lines) == 2 and all(reason in x for x in lines)  # the default network: BatchNorm
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
    assert args.tta == 8 and args.roi is None and args.overlap is None and args.precision == "auto"
    args = build_parser().parse_args(["predict", "--checkpoint", "c", "--input", "i", "--out", "o", "--tta", "3"])
    assert args.tta == 3
    checkpoint, data, root = setup
    common = ["predict", "--checkpoint", str(checkpoint), "--input", str(data)]
    assert cga(common + ["--out", str(root / "cli"), "--tta", "2", "--precision", "bfloat16"]) == 0
    assert "whole box in one pass" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "roi"), "--roi", "16", "16", "16"]) == 0
    assert "windows of 16x16x16 (--roi/--overlap given)" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "whole_box"), "--whole-box"]) == 0
    assert "whole box in one pass (--whole-box, fits the memory budget)" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "both"), "--whole-box", "--roi", "16", "16", "16"]) == 2
    assert capsys.readouterr().err.strip().startswith("cga predict: error: --whole-box runs one pass")
    assert cga(common + ["--out", str(root / "bad"), "--tta", "9"]) == 2
    assert "--tta must be a number of flips from 0 to 8, got 9" in capsys.readouterr().err
    assert cga(common + ["--out", str(root / "bad"), "--memory-limit", "lots"]) == 2
    assert "--memory-limit 'lots'" in capsys.readouterr().err


def test_prototypes_are_pooled_over_the_window_around_each_voxel_unless_asked_otherwise(
    trained_run, setup, tmp_path, capsys
):
    _, data, _ = setup  # 40x40x32 cases; trained_run learnt on 16^3 crops
    common = ["predict", "--checkpoint", str(trained_run / "last.pt"), "--input", str(data)]
    assert cga(common + ["--out", str(tmp_path / "window")]) == 0
    err = capsys.readouterr().err
    assert "whole box in one pass" in err and "prototypes per 128x128x128 window around each voxel" in err
    assert cga(common + ["--out", str(tmp_path / "crop"), "--prototype-field", "crop"]) == 0
    assert "prototypes per 16x16x16 tile" in capsys.readouterr().err
    assert cga(common + ["--out", str(tmp_path / "input"), "--prototype-field", "input"]) == 0
    assert "prototypes per input" in capsys.readouterr().err
    window, crop, per_input = (_labels(tmp_path / name) for name in ("window", "crop", "input"))
    assert window.keys() == crop.keys() == per_input.keys() and len(crop) == 2
    with pytest.raises(SystemExit) as exit_info:
        cga(common + ["--out", str(tmp_path / "bad"), "--prototype-field", "tiles"])
    assert exit_info.value.code == 2
    assert "cga predict: error: argument --prototype-field: invalid choice: 'tiles'" in capsys.readouterr().err


@pytest.fixture
def tiny(tmp_path):
    """Two 24x24x16 cases, the first without its t1ce file: (input folder, its case IDs)."""
    ids = synthesize_cohort(tmp_path / "data", cases=2, seed=3, shape=(24, 24, 16), progress=False)
    (tmp_path / "data" / ids[0] / f"{ids[0]}_t1ce.nii.gz").unlink()
    return tmp_path / "data", ids


def test_a_missing_sequence_is_refused_without_allow_missing(setup, tiny, tmp_path, capsys):
    checkpoint, _, _ = setup
    data, ids = tiny
    out = tmp_path / "out"
    assert cga(["predict", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cga predict: error: ") and "\n" not in err
    assert f"{ids[0]}_t1ce.nii.gz" in err and "no t1ce sequence" in err
    assert not out.exists() or not list(out.glob("*.nii.gz"))


def test_allow_missing_zero_fills_logs_and_records_the_missing_sequence(setup, tiny, tmp_path, capsys):
    checkpoint, _, _ = setup
    data, ids = tiny
    out = tmp_path / "out"
    command = ["predict", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(out), "--allow-missing"]
    assert cga(command) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "missing" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{ids[0]}: missing t1ce: zero-filled")
    assert "not trained for missing sequences" in lines[0]
    assert nib.load(out / f"{ids[0]}.nii.gz").header["descrip"].tobytes().rstrip(b"\0") == b"cga: missing t1ce"
    assert b"missing" not in nib.load(out / f"{ids[1]}.nii.gz").header["descrip"].tobytes()
    assert (out / f"{ids[0]}_overlay.png").is_file() and nib.load(out / f"{ids[0]}.nii.gz").shape == (24, 24, 16)


def test_a_model_trained_with_dropout_gets_no_warning(tiny, tmp_path):
    data, ids = tiny
    (data / ids[0] / f"{ids[0]}_t2.nii.gz").unlink()
    model = CGAUNet(base_channels=4)
    checkpoint = tmp_path / "dropout.pt"
    save_checkpoint(
        checkpoint, model=model.state_dict(), config={"model": model.config.to_dict(), "sequence_dropout": 0.3}
    )
    lines = []
    predict_folder(checkpoint, data, tmp_path / "out", progress=False, log=lines.append, allow_missing=True)
    assert f"{ids[0]}: missing t1ce, t2: zero-filled (--allow-missing)" in lines
    header = nib.load(tmp_path / "out" / f"{ids[0]}.nii.gz").header
    assert header["descrip"].tobytes().rstrip(b"\0") == b"cga: missing t1ce,t2"


def test_a_case_without_any_sequence_is_always_refused(setup, tiny, tmp_path, capsys):
    checkpoint, _, _ = setup
    data, ids = tiny
    for path in (data / ids[0]).glob(f"{ids[0]}_*.nii.gz"):
        if not path.name.endswith("_seg.nii.gz"):
            path.unlink()
    out = tmp_path / "out"
    command = ["predict", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(out), "--allow-missing"]
    assert cga(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cga predict: error: ") and f"case {ids[0]} has none of its sequences" in err
    assert not out.exists() or not list(out.glob("*.nii.gz"))


def test_allow_missing_keeps_the_geometry_checks_of_the_present_sequences(setup, tiny, tmp_path, capsys):
    checkpoint, _, _ = setup
    data, ids = tiny
    t2 = data / ids[0] / f"{ids[0]}_t2.nii.gz"
    image = nib.load(t2)
    affine = image.affine.copy()
    affine[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine, image.header), t2)
    command = ["predict", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(tmp_path / "out")]
    assert cga(command + ["--allow-missing"]) == 2
    err = capsys.readouterr().err
    assert str(t2) in err and "affine differs" in err
