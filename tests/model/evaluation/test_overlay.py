"""Overlay PNGs: each class coloured by its tissue and named as its cohort's scheme names it."""

import numpy as np
import pytest
import torch

from cga_model.cli import main as cga
from cga_model.data.labels import CLASS_NAMES, CYST, GTV
from cga_model.data.layouts import LAYOUTS
from cga_model.data.synth import synthesize_cohort
from cga_model.evaluation import overlay
from cga_model.nn.checkpoint import data_record, save_checkpoint
from cga_model.nn.config import ModelConfig
from cga_model.nn.network import CGAUNet


@pytest.mark.parametrize(
    "layout, text",
    [
        ("brats2023", "red: NETC, green: SNFH, yellow: ET"),
        ("brats2024", "red: NETC, green: SNFH, yellow: ET, cyan: RC"),
        ("brats-ped", "yellow: ET, red: NETC, magenta: CC, green: ED"),  # PED's 1 is enhancing tumour, not core
        ("brats-men-rt", "orange: GTV"),
    ],
)
def test_the_legend_names_the_cohorts_labels(layout, text):
    scheme = LAYOUTS[layout].scheme
    assert overlay.legend(scheme.names, scheme.tissues) == text


def test_classes_take_their_tissues_colour():
    scheme = LAYOUTS["brats-ped"].scheme
    labels = np.arange(5).reshape(5, 1)
    rgb = overlay._blend(np.zeros((5, 1)), labels, scheme.tissues)
    for k, tissue in enumerate(scheme.tissues[1:], start=1):
        np.testing.assert_allclose(rgb[k, 0], 0.55 * np.array(overlay.TISSUE_COLOURS[tissue]))
    np.testing.assert_array_equal(rgb[0, 0], 0.0)  # background stays the image
    assert overlay.TISSUE_COLOURS[CYST] != overlay.TISSUE_COLOURS[CLASS_NAMES[3]] != overlay.TISSUE_COLOURS[GTV]


def test_predict_overlays_of_men_rt_name_the_gtv(tmp_path, monkeypatch):
    titles = []
    real = overlay.save_png
    monkeypatch.setattr(overlay, "save_png", lambda fig, path, dpi: (titles.append(fig._suptitle.get_text()),
                                                                     real(fig, path, dpi)))  # fmt: skip
    synthesize_cohort(tmp_path / "data", cases=1, seed=1, shape=(16, 16, 16), layout="brats-men-rt", progress=False)
    config = ModelConfig(in_channels=1, num_classes=2, base_channels=4)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", model=CGAUNet(config).state_dict(),
                    config={"model": config.to_dict(), **data_record("brats-men-rt")})  # fmt: skip
    argv = ["predict", "--checkpoint", str(tmp_path / "m.pt"), "--input", str(tmp_path / "data")]
    assert cga([*argv, "--out", str(tmp_path / "pred")]) == 0
    (title,) = titles
    assert title.endswith("orange: GTV") and "core" not in title and len(list((tmp_path / "pred").glob("*.png"))) == 1
