"""curves.png: the loss terms and the validation Dice of every region the run validated (its cohort's own)."""

import json

import matplotlib.image
import pytest
import torch

from cga_model.cli import main as cga
from cga_model.data.layouts import LAYOUTS
from cga_model.training import curves


def _drawn(monkeypatch) -> list:
    """Records ``(loss labels, validation labels, validation points)`` of every figure plot_curves saves."""
    seen = []
    real = curves.save_png

    def record(fig, path, dpi):
        loss, val = fig.axes[:2]
        seen.append(
            (
                [line.get_label() for line in loss.lines],
                [line.get_label() for line in val.lines],
                {line.get_label(): list(zip(*line.get_data())) for line in val.lines},
            )
        )
        real(fig, path, dpi)

    monkeypatch.setattr(curves, "save_png", record)
    return seen


def _log(path, layout, epochs=3, every=2):
    """A metrics.jsonl of ``epochs`` epochs validating the regions of ``layout`` every ``every`` epochs."""
    lines = []
    for epoch in range(1, epochs + 1):
        record = {"epoch": epoch, "loss": 1.0 / epoch, "dice": 0.5, "attention": 0.2, "inter": 0.1}
        if epoch % every == 0:
            record.update({f"val_dice_{r}": 0.1 * epoch for r in LAYOUTS[layout].scheme.regions})
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "layout, regions",
    [
        ("brats2023", ["ET", "TC", "WT"]),
        ("brats2024", ["ET", "TC", "WT", "RC"]),
        ("brats-met", ["ET", "TC", "WT", "RC"]),
        ("brats-ped", ["ET", "TC", "WT"]),
        ("brats-men-rt", ["GTV"]),
    ],
)
def test_curves_draw_every_validated_region(tmp_path, monkeypatch, layout, regions):
    seen = _drawn(monkeypatch)
    curves.plot_curves(_log(tmp_path / "metrics.jsonl", layout), tmp_path / "curves.png")
    loss, val, points = seen[0]
    assert loss == list(curves.LOSS_TERMS) and val == regions
    assert all(p == [(2, pytest.approx(0.2))] for p in points.values())  # validation epochs only
    assert matplotlib.image.imread(tmp_path / "curves.png").shape[:2] == (380, 1000)


def test_a_log_without_validation_draws_an_empty_dice_panel(tmp_path, monkeypatch):
    seen = _drawn(monkeypatch)
    curves.plot_curves(_log(tmp_path / "metrics.jsonl", "brats-men-rt", epochs=1), tmp_path / "curves.png")
    assert seen[0][1] == [] and (tmp_path / "curves.png").is_file()


def test_a_men_rt_run_shows_gtv(tmp_path, monkeypatch):
    """A one-channel MEN-RT run: its log holds val_dice_GTV only, and its curves.png draws it."""
    seen = _drawn(monkeypatch)
    data, run = tmp_path / "data", tmp_path / "run"
    cube = ["16", "16", "16"]
    assert cga(["synth", str(data), "--layout", "brats-men-rt", "--cases", "2", "--seed", "2", "--shape", *cube]) == 0
    torch.manual_seed(0)
    train = ["--epochs", "1", "--crop", *cube, "--batch-size", "1", "--base-channels", "4", "--workers", "0"]
    assert cga(["train", "--data", str(data), "--out", str(run), *train, "--val-fraction", "0.5"]) == 0
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [k for k in record if k.startswith("val_dice_")] == ["val_dice_GTV"]
    assert seen[-1][1] == ["GTV"] and (run / "curves.png").is_file()
