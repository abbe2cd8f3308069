"""Validation during training: every --val-every epochs and after the last, sliding windows at
the training crop with the brain mask, best.pt on the mean Dice."""

import json

import numpy as np
import torch

from cga_model.cli import main as cga
from cga_model.nn.config import ModelConfig
from cga_model.training.loop import TrainConfig, train, validation_due

TINY = dict(crop=(16, 16, 16), batch_size=2, model=ModelConfig(base_channels=4), val_fraction=0.25, lr=3e-3, workers=0)
REGIONS = ("WT", "TC", "ET")


def test_validation_epochs():
    config = TrainConfig(data="", out="", epochs=7, val_every=3)
    assert [e for e in range(7) if validation_due(config, e)] == [2, 5, 6]


def test_best_checkpoint_is_the_best_validated_epoch(cohort, tmp_path):
    train(TrainConfig(data=str(cohort), out=str(tmp_path), epochs=5, val_every=2, **TINY), progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validated = [r for r in records if "val_dice_WT" in r]
    assert [r["epoch"] for r in validated] == [2, 4, 5]
    scores = {r["epoch"]: np.mean([r[f"val_dice_{k}"] for k in REGIONS]) for r in validated}
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["record"]["epoch"] == max(scores, key=scores.get)  # the first of equal scores
    assert best["config"]["val_every"] == 2 and best["config"]["brain_mask"]
    assert best["config"]["loss"]["segmentation"] == "dice_ce"
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_val_every_below_one_is_refused(cohort, tmp_path, capsys):
    args = [
        "train",
        "--data",
        str(cohort),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--crop",
        "16",
        "16",
        "16",
        "--batch-size",
        "1",
        "--base-channels",
        "4",
        "--workers",
        "0",
        "--val-every",
        "0",
    ]
    assert cga(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cga train: error:") and "--val-every" in err[0] and "got 0" in err[0]
