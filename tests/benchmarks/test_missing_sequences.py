"""The missing-sequence benchmark scores a tiny checkpoint with every sequence and with each one missing."""

import torch

from benchmarks.missing_sequences import main
from cga_model.cli import main as cga
from cga_model.data.synth import synthesize_cohort


def test_table_has_a_row_per_checkpoint_and_condition(tmp_path, capsys):
    synthesize_cohort(tmp_path / "train", cases=2, seed=3, shape=(24, 24, 16), progress=False)
    synthesize_cohort(tmp_path / "test", cases=2, seed=4, shape=(24, 24, 16), progress=False)
    run = tmp_path / "run_dropout_s0_1"
    common = ["--epochs", "1", "--crop", "16", "16", "16", "--batch-size", "2", "--val-fraction", "0"]
    flags = common + ["--workers", "0", "--base-channels", "4", "--sequence-dropout", "0.5"]
    assert cga(["train", "--data", str(tmp_path / "train"), "--out", str(run), *flags]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["config"]["sequence_dropout"] == 0.5
    capsys.readouterr()
    main([str(run / "last.pt"), "--cases", str(tmp_path / "test"), "--out", str(tmp_path / "bench"), "--threads", "1"])
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "bench" / "missing_sequences.md").read_text()
    per_checkpoint, summary = printed.split("\n\n")
    rows = [line.split(" | ") for line in per_checkpoint.splitlines()[2:]]
    assert [row[2] for row in rows] == ["all", "no flair", "no t1ce", "no t1", "no t2"]
    for row in rows:
        assert row[0] == "| run_dropout_s0_1" and row[1] == "0.5"
        assert all(0.0 <= float(value.strip(" |")) <= 1.0 for value in row[3:])
    case = tmp_path / "bench" / "inputs" / "no_t1ce" / "SYN_0004_000"
    assert (case / "SYN_0004_000_t1.nii.gz").is_symlink() and not (case / "SYN_0004_000_t1ce.nii.gz").exists()
    summary_rows = [line.strip("| ").split(" | ") for line in summary.splitlines()[2:]]
    assert [row[2] for row in summary_rows] == ["all", "no flair", "no t1ce", "no t1", "no t2"]
    for row, checkpoint_row in zip(summary_rows, rows):
        assert row[:2] == ["0.5", "1"]  # one checkpoint: its own scores, spread 0
        assert [float(cell.split(" ± ")[0]) for cell in row[3:6]] == [float(v.strip(" |")) for v in checkpoint_row[3:]]
        assert all(cell.endswith("± 0.000") for cell in row[3:6])
    assert summary_rows[0][6] == "+0.000 / +0.000 / +0.000"
