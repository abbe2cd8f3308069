"""Fixtures of the inference tests: one tiny untrained model per cohort, on that cohort's own synthetic cases."""

import pytest
import torch

from cga_model.data.layouts import LAYOUTS
from cga_model.data.synth import synthesize_cohort
from cga_model.nn.checkpoint import data_record, save_checkpoint
from cga_model.nn.config import ModelConfig
from cga_model.nn.network import CGAUNet

COHORT_SHAPE = (24, 24, 16)


@pytest.fixture(scope="session")
def cohorts(tmp_path_factory):
    """``{layout: (data folder of 2 cases, checkpoint of a base-4 model of that layout's sequences and classes)}``
    for GLI 2021, PED and MEN-RT; read only."""
    root = tmp_path_factory.mktemp("cohorts")
    made = {}
    for layout in ("brats2021", "brats-ped", "brats-men-rt"):
        synthesize_cohort(root / layout, cases=2, seed=3, shape=COHORT_SHAPE, layout=layout, progress=False)
        chosen = LAYOUTS[layout]
        torch.manual_seed(0)
        config = ModelConfig(in_channels=len(chosen.modalities), num_classes=chosen.scheme.num_classes, base_channels=4)
        checkpoint = root / f"{layout}.pt"
        model = CGAUNet(config)
        save_checkpoint(checkpoint, model=model.state_dict(), config={"model": config.to_dict(), **data_record(layout)})
        made[layout] = root / layout, checkpoint
    return made
