"""The inference benchmark's candidates segment the same case alike, and its report reads its rows."""

import numpy as np
import pytest
import torch

from benchmarks.inference import CANDIDATES, NORM_OF, UNFUSED, format_rows, model_of, segment
from cga_model.data.cases import normalize
from cga_model.data.synth_hard import synthesize_hard_case


@pytest.fixture(scope="module")
def small_case():
    images, _ = synthesize_hard_case(1, (96, 96, 64))
    return torch.from_numpy(normalize(images))


def test_every_candidate_gives_labels_inside_the_brain(small_case):
    brain = (small_case != 0).any(0)
    results = {c: segment(c, model_of(4, NORM_OF.get(c, "gn"), c not in UNFUSED), small_case) for c in CANDIDATES}
    for candidate, labels in results.items():
        assert labels.shape == small_case.shape[1:] and labels.dtype == torch.uint8, candidate
        assert not labels[~brain].any(), candidate
    # the same network: the whole box and 128^3 windows (one window here) agree on nearly every voxel
    agree = (results["whole_box"] == results["windows"]).float().mean().item()
    assert agree > 0.99
    assert (results["default"] == results["default_unfused"]).float().mean().item() > 0.999  # float rounding only


def test_report_gives_medians_speed_ups_and_the_limit():
    rows = [{"candidate": "windows", "base": 8, "seconds": s, "peak_rss_gb": 1.0} for s in (10.0, 12.0)] + [
        {"candidate": "whole_box", "base": 8, "seconds": s, "peak_rss_gb": 0.5} for s in (2.0, 3.0)
    ]
    limits = {8: {"box": [144, 176, 144], "gmacs": 66.0, "conv_gmacs_per_s": 100.0, "limit_s": 0.66}}
    text = format_rows(rows, limits)
    assert "| 8 | windows | 11.0 | 1.00 | 1.0 |" in text and "| 8 | whole_box | 2.5 | 0.50 | 4.4 |" in text
    assert "compute limit: 66 G multiply-adds" in text and np.isclose(limits[8]["limit_s"], 0.66)
