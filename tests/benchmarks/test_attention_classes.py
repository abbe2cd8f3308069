"""The attention-class table counts the truth at the attention's grid and what the argmax names."""

import numpy as np
import pytest
import torch

from benchmarks.attention_classes import confusion, main, shares
from cga_model import CGAUNet
from cga_model.data.cases import load_case
from cga_model.data.layouts import find_cases
from cga_model.nn.checkpoint import save_checkpoint


def _checkpoint(path, model):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model=model.state_dict(), config={"model": model.config.to_dict()})
    return path


def _truth_counts(case) -> np.ndarray:
    """Voxels per class inside the brain on the attention's grid (the first voxel of every 8-block), directly."""
    brain = np.any(case.image != 0, axis=0)
    xs, ys, zs = (np.flatnonzero(brain.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    box = (slice(xs[0], xs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(zs[0], zs[-1] + 1))
    grid = tuple(slice(None, None, 8) for _ in range(3))
    labels, inside = case.classes[box][grid], brain[box][grid]
    return np.bincount(labels[inside].astype(np.int64), minlength=4)


def test_an_attention_that_names_one_class_fills_its_column(cohort, tmp_path, capsys):
    model = CGAUNet(base_channels=4)
    path = model.sam.attention_path
    for conv in (path.conv1, path.conv2, path.conv3):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    with torch.no_grad():
        path.conv3.bias[2] = 5.0  # the argmax is class 2 everywhere
    model.eval()
    cases = [load_case(source, with_labels=True) for source in find_cases(cohort)]
    counts = sum(confusion(model, case) for case in cases)
    truth = sum(_truth_counts(case) for case in cases)
    assert counts.sum() > 0 and np.array_equal(counts.sum(1), truth)
    assert np.array_equal(counts[:, 2], truth) and counts[:, [0, 1, 3]].sum() == 0
    recall, precision = shares(counts)
    assert truth[2] > 0 and recall.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert precision[2] == pytest.approx(truth[2] / truth.sum()) and precision[[0, 1, 3]].tolist() == [0, 0, 0]
    checkpoint = _checkpoint(tmp_path / "run_one" / "last.pt", model)
    main([str(checkpoint), "--cases", str(cohort), "--out", str(tmp_path / "bench"), "--threads", "1"])
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "bench" / "attention_classes.md").read_text()
    assert printed.startswith("| run_one (truth \\ argmax) | class 0 | class 1 | class 2 | class 3 | recall |")


def test_a_network_without_sam_is_refused(cohort, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "last.pt", CGAUNet(base_channels=4, sam=False))
    with pytest.raises(SystemExit) as stop:
        main([str(checkpoint), "--cases", str(cohort), "--out", str(tmp_path / "bench")])
    assert stop.value.code == 2 and "has no SAM" in capsys.readouterr().err
