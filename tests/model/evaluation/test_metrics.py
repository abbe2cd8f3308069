"""BraTS metrics against hand-computed values, the empty-mask rules, and MONAI as an oracle."""

import numpy as np
import pytest
import torch

from cga_model.evaluation.metrics import EMPTY_HD, case_metrics, dice, hausdorff, region_mask, region_metrics, summarize


def test_regions():
    classes = np.array([0, 1, 2, 3, 4])  # background, core, edema, enhancing, resection cavity
    assert region_mask(classes, "ET").tolist() == [False, False, False, True, False]
    assert region_mask(classes, "TC").tolist() == [False, True, False, True, False]
    assert region_mask(classes, "WT").tolist() == [False, True, True, True, False]
    assert region_mask(classes, "RC").tolist() == [False, False, False, False, True]


def test_hand_computed_values():
    pred = np.zeros((6, 6, 6), bool)
    truth = np.zeros((6, 6, 6), bool)
    pred[1:3, 1:3, 1:3] = True  # 8 voxels
    truth[1:3, 1:3, 1:4] = True  # 12 voxels, 8 shared
    m = region_metrics(pred, truth)
    assert m["dice"] == pytest.approx(2 * 8 / 20)
    assert m["sensitivity"] == pytest.approx(8 / 12)
    assert m["specificity"] == pytest.approx(1.0)
    assert m["hd100"] == pytest.approx(1.0)  # the extra truth slab is 1 voxel from the prediction's surface


def test_hausdorff_uses_spacing():
    a = np.zeros((5, 5, 5), bool)
    b = np.zeros((5, 5, 5), bool)
    a[0, 0, 0] = True
    b[0, 0, 3] = True
    assert hausdorff(a, b, spacing=(1, 1, 2.5)) == pytest.approx(7.5)
    assert hausdorff(a, b, spacing=(2, 2, 1)) == pytest.approx(3.0)


def test_empty_rules():
    empty = np.zeros((4, 4, 4), bool)
    some = empty.copy()
    some[1, 1, 1] = True
    both = region_metrics(empty, empty)
    assert both["dice"] == 1 and both["hd95"] == 0 and both["hd100"] == 0
    one = region_metrics(some, empty)
    assert one["dice"] == 0 and one["hd95"] == EMPTY_HD and one["hd100"] == EMPTY_HD
    assert region_metrics(empty, some)["dice"] == 0


def test_case_metrics_and_summary():
    truth = np.zeros((8, 8, 8), np.uint8)
    truth[2:6, 2:6, 2:6] = 2
    truth[3:5, 3:5, 3:5] = 3
    row = case_metrics(truth, truth)
    assert all(row[f"{r}_dice"] == 1 for r in ("ET", "TC", "WT")) and "RC_dice" not in row
    assert case_metrics(truth, np.where(truth == 3, 4, truth), regions=("ET", "RC"))["RC_dice"] == 0
    with pytest.raises(ValueError, match="differs from ground truth shape"):
        case_metrics(truth[:4], truth)
    summary = summarize([{"case_id": "a", "x": 1.0, "y": np.nan}, {"case_id": "b", "x": 3.0, "y": 5.0}])
    assert summary["mean"]["x"] == 2 and summary["median"]["x"] == 2 and summary["std"]["x"] == 1
    assert summary["mean"]["y"] == 5 and summary["std"]["y"] == 0  # NaN (undefined) is left out


def test_against_monai_oracle():
    monai_metrics = pytest.importorskip(
        "monai.metrics", reason="MONAI is installed by make test; needed only as an oracle"
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        from scipy import ndimage

        pred = ndimage.binary_dilation(rng.random((20, 20, 20)) > 0.97, iterations=2)
        truth = ndimage.binary_dilation(rng.random((20, 20, 20)) > 0.97, iterations=2)
        p = torch.from_numpy(pred)[None, None].float()
        t = torch.from_numpy(truth)[None, None].float()
        expected_dice = monai_metrics.compute_dice(p, t, include_background=True).item()
        expected_hd95 = monai_metrics.compute_hausdorff_distance(p, t, include_background=True, percentile=95).item()
        expected_hd = monai_metrics.compute_hausdorff_distance(p, t, include_background=True).item()
        assert dice(pred, truth) == pytest.approx(expected_dice, rel=1e-6)
        assert hausdorff(pred, truth, percentile=95) == pytest.approx(expected_hd95, rel=1e-6)
        assert hausdorff(pred, truth) == pytest.approx(expected_hd, rel=1e-6)
