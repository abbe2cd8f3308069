"""Look inside a prediction: attention / feature PNGs (Figs. 6-7) and the confidence distribution (Fig. 8)."""

from collections import OrderedDict

import matplotlib.image
import numpy as np
import pytest
import torch
from torch import nn

from cga_model.cli import main
from cga_model.data.nifti import save_nifti
from cga_model.data.synth import synthesize_cohort
from cga_model.inference import confidence as conf
from cga_model.inference.explain import DPI, PANEL_INCHES, capture_update, explain_volume
from cga_model.nn.checkpoint import save_checkpoint
from cga_model.nn.dropin import CategoryGuidedAttention
from cga_model.nn.network import CGAUNet


@pytest.fixture(scope="module")
def case_and_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    synthesize_cohort(root / "data", cases=1, seed=0, shape=(40, 40, 32))
    torch.manual_seed(0)
    model = CGAUNet(base_channels=8)
    save_checkpoint(root / "model.pt", model=model.state_dict(), config={"model": model.config.to_dict()})
    return root / "data", root / "model.pt"


def _check_png(path, width_in, height_in):
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (round(height_in * DPI), round(width_in * DPI))
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05 and (rgb < 0.9).mean() > 0.05  # drawn on, not a blank page


def test_cga_explain_writes_both_figures(case_and_checkpoint, tmp_path, capsys):
    data, checkpoint = case_and_checkpoint
    args = [
        "explain",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(data),
        "--out",
        str(tmp_path),
        "--roi",
        "32",
        "32",
        "32",
    ]
    assert main(args) == 0
    (attention,) = tmp_path.glob("*_attention.png")
    (features,) = tmp_path.glob("*_features.png")
    _check_png(attention, PANEL_INCHES * 4 + 1.2, PANEL_INCHES + 0.9)  # one panel per class, K = 4
    _check_png(features, 3 * PANEL_INCHES + 0.8, PANEL_INCHES * 4)  # four channels: before, after, classes
    assert main(args) == 2 and "pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_explain_refuses_a_baseline(case_and_checkpoint, tmp_path, capsys):
    baseline = CGAUNet(base_channels=8, sam=False)
    save_checkpoint(tmp_path / "base.pt", model=baseline.state_dict(), config={"model": baseline.config.to_dict()})
    assert (
        main(
            [
                "explain",
                "--checkpoint",
                str(tmp_path / "base.pt"),
                "--input",
                str(case_and_checkpoint[0]),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no intra-class update" in capsys.readouterr().err


def test_capture_sees_the_update():
    torch.manual_seed(0)
    model = CGAUNet(base_channels=8).eval()
    seen = capture_update(model, torch.randn(1, 4, 32, 32, 32))
    assert seen.attention.shape == (4, 4, 4, 4) and seen.before.shape == seen.after.shape == (64, 4, 4, 4)
    torch.testing.assert_close(seen.attention.sum(0), torch.ones(4, 4, 4))
    labels = seen.attention.argmax(0)
    change = seen.after - seen.before  # the residual update adds the class prototype: constant within a class
    for k in labels.unique():
        voxels = change[:, labels == k]
        torch.testing.assert_close(voxels, voxels[:, :1].expand_as(voxels))


def test_explain_works_for_the_dropin_wrapper(tmp_path):
    torch.manual_seed(0)
    host = nn.Sequential(
        OrderedDict(
            down=nn.Conv3d(4, 8, 3, stride=2, padding=1),
            mid=nn.Conv3d(8, 8, 3, padding=1),
            up=nn.ConvTranspose3d(8, 4, 2, stride=2),
        )
    )
    wrapped = CategoryGuidedAttention(host, "mid", 4, in_channels=4, rate=2).eval()
    image, flair = torch.randn(4, 16, 16, 16), np.random.rand(16, 16, 16).astype(np.float32)
    paths = explain_volume(
        wrapped, image, flair, None, tmp_path / "case", roi=(16, 16, 16), channels=2
    )  # no truth: its prediction
    _check_png(paths[0], PANEL_INCHES * 4 + 1.2, PANEL_INCHES + 0.9)
    _check_png(paths[1], 3 * PANEL_INCHES + 0.8, PANEL_INCHES * 2)


def _probs(shape, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=4.0, size=(4, *shape))
    e = np.exp(logits - logits.max(0))
    return (e / e.sum(0)).astype(np.float32)


def test_bin_shares_match_a_direct_count():
    probs = _probs((9, 8, 7), 0)
    probs[:, 0, 0, 0] = [0.9, 0.1, 0.0, 0.0]  # bin edges: 0.1 -> first bin, 0.9 -> third
    brain = np.random.default_rng(1).random((9, 8, 7)) > 0.3
    counts = conf.region_bin_counts(probs, brain)
    assert set(counts) == {"ET", "TC", "WT"}
    for region, classes in {"ET": [3], "TC": [1, 3], "WT": [1, 2, 3]}.items():
        p = np.clip(probs[classes].sum(0)[brain], 0, 1)
        direct = [(p <= 0.1).sum(), ((p > 0.1) & (p <= 0.5)).sum(), ((p > 0.5) & (p <= 0.9)).sum(), (p > 0.9).sum()]
        assert counts[region].tolist() == direct
    shares = [r["share"] for r in conf.rows_of("m", counts, 1) if r["region"] == "WT"]
    assert sum(shares) == pytest.approx(1.0)


def test_cga_confidence_puts_two_models_side_by_side(tmp_path, capsys):
    truth = {}
    for name, seed in (("cga", 0), ("baseline", 1)):
        folder = tmp_path / name
        folder.mkdir()
        for case in ("A", "B"):
            probs = _probs((6, 5, 4), seed + (case == "B") * 10)
            save_nifti(folder / f"{case}_prob.nii.gz", np.moveaxis(probs, 0, -1), np.eye(4))
            truth[name] = conf.add_counts(truth.get(name, {}), conf.region_bin_counts(probs))
    out = tmp_path / "out"
    assert (
        main(
            [
                "confidence",
                "--model",
                f"CGA={tmp_path / 'cga'}",
                "--model",
                f"baseline={tmp_path / 'baseline'}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(__import__("csv").DictReader((out / "confidence.csv").open()))
    assert len(rows) == 2 * 3 * 4 and {r["model"] for r in rows} == {"CGA", "baseline"}
    for name, label in (("cga", "CGA"), ("baseline", "baseline")):
        for region, counts in truth[name].items():
            got = [float(r["share"]) for r in rows if r["model"] == label and r["region"] == region]
            assert got == pytest.approx((counts / counts.sum()).tolist())
    _check_png(out / "confidence.png", 12, 3.6)
    assert main(["confidence", "--model", f"CGA={tmp_path / 'cga'}", "--out", str(out)]) == 2
    assert main(["confidence", "--model", f"CGA={tmp_path / 'nothing.pt'}", "--out", str(tmp_path / "o2")]) == 2
    assert "give them with --input" in capsys.readouterr().err
