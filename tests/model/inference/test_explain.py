"""cga explain (paper Figs. 6-7): attention and feature PNGs for every cohort, models of any number of input
sequences, and the output rule of every writing command."""

import shutil
from collections import OrderedDict

import matplotlib.image
import numpy as np
import pytest
import torch
from torch import nn

from cga_model.cli import main
from cga_model.data.layouts import find_cases
from cga_model.data.synth import synthesize_cohort
from cga_model.inference import explain
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


# every cohort: any number of input sequences, the scheme's own classes

ROI = ["--roi", "24", "24", "16"]


def _explain(checkpoint, data, out, *extra) -> int:
    return main(["explain", "--checkpoint", str(checkpoint), "--input", str(data), "--out", str(out), *ROI, *extra])


def _titles(monkeypatch) -> list:
    """Records ``(suptitle, [axes titles])`` of every figure explain saves (then saves it)."""
    seen = []
    real = explain.save_png

    def record(fig, path, dpi):
        seen.append((fig._suptitle.get_text(), [ax.get_title() for ax in fig.axes]))
        real(fig, path, dpi)

    monkeypatch.setattr(explain, "save_png", record)
    return seen


NETC, ET = "necrotic / non-enhancing tumour core", "ET\n(enhancing tumour)"


@pytest.mark.parametrize(
    "layout, classes, sequence",
    [
        ("brats-ped", ["background", ET, f"NETC\n({NETC})", "CC\n(cyst)", "ED\n(edema)"], "FLAIR"),
        ("brats-men-rt", ["background", "GTV\n(gross tumour volume)"], "T1c"),  # one input channel, T1c only
        ("brats2021", ["background", f"NCR/NET\n({NETC})", "ED\n(edema)", ET], "FLAIR"),
    ],
)
def test_explain_draws_the_cohorts_own_classes(cohorts, tmp_path, monkeypatch, layout, classes, sequence):
    data, checkpoint = cohorts[layout]
    seen = _titles(monkeypatch)
    assert _explain(checkpoint, data, tmp_path) == 0
    assert len(list(tmp_path.glob("*_attention.png"))) == len(list(tmp_path.glob("*_features.png"))) == 2
    attention_title, panels = seen[0]
    assert f"over {sequence} at axial slice" in attention_title
    assert panels[: len(classes)] == [f"class {k}: {c}" for k, c in enumerate(classes)]
    assert panels[len(classes)] == ""  # then the colour bar: one panel per class, no more
    _check_png(next(tmp_path.glob("*_attention.png")), PANEL_INCHES * len(classes) + 1.2, PANEL_INCHES + 0.9)


def test_explain_refuses_a_gli_model_on_ped_cases(cohorts, tmp_path, capsys):
    _, gli = cohorts["brats2021"]
    data, _ = cohorts["brats-ped"]
    assert _explain(gli, data, tmp_path / "out") == 2
    assert "has no label for" in capsys.readouterr().err and not (tmp_path / "out").exists()


# the output rule of every writing command


def test_an_existing_png_of_any_case_is_refused_before_any_is_written(cohorts, tmp_path, capsys):
    data, checkpoint = cohorts["brats-men-rt"]
    last = find_cases(data)[-1].case_id
    (tmp_path / f"{last}_features.png").write_bytes(b"the user's file")
    assert _explain(checkpoint, data, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("cga explain: error: ") and f"{last}_features.png exists" in err and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == [f"{last}_features.png"]  # the first case not written either
    assert _explain(checkpoint, data, tmp_path, "--overwrite") == 0
    assert len(list(tmp_path.glob("*.png"))) == 4 and (tmp_path / f"{last}_features.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_into_its_input_is_refused_even_with_overwrite(cohorts, capsys):
    data, checkpoint = cohorts["brats-ped"]
    case = find_cases(data)[0].images[0].parent
    assert _explain(checkpoint, data, case, "--overwrite") == 2
    assert "is inside the input" in capsys.readouterr().err
    assert not list(case.glob("*.png"))


def test_explain_through_symlinks_keeps_the_links(cohorts, tmp_path):
    data, checkpoint = cohorts["brats-ped"]
    first = find_cases(data)[0].case_id
    (tmp_path / "real").mkdir()
    out = tmp_path / "link"
    out.symlink_to(tmp_path / "real")
    (out / f"{first}_attention.png").symlink_to(tmp_path / "archive.png")  # to nothing yet: replaces nothing
    assert _explain(checkpoint, data, out) == 0
    assert out.is_symlink() and (out / f"{first}_attention.png").is_symlink()
    assert (tmp_path / "archive.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        sorted(p.name for p in (tmp_path / "real").iterdir() if not p.is_symlink())
        == sorted(f"{c.case_id}{s}" for c in find_cases(data) for s in ("_attention.png", "_features.png"))[1:]
    )  # every PNG but the linked one, no temporary file left


def test_a_bad_later_case_is_refused_before_any_png_is_written(cohorts, tmp_path, capsys):
    data, checkpoint = cohorts["brats-men-rt"]
    shutil.copytree(data, tmp_path / "data")
    last = find_cases(tmp_path / "data")[-1]
    last.images[0].unlink()  # MEN-RT's one sequence, T1c
    assert _explain(checkpoint, tmp_path / "data", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("cga explain: error: ") and last.images[0].name in err
    assert not (tmp_path / "out").exists()
