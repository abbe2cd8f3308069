"""The prediction-path benchmark scores every finished run of a tiny ``benchmarks.learning`` measurement along
every path, pairs each with ``windows128``, and resumes without redoing a case."""

import shutil

import pytest

import benchmarks.prediction_paths as paths_bench
from benchmarks.learning import REGIONS, Setting, load_results, measure

TINY = dict(
    train_cases=2,
    val_cases=1,
    test_cases=2,
    shape=(40, 40, 24),
    steps=2,
    crop=(16, 16, 16),
    batch_size=2,
    base_channels=4,
    workers=0,
    seeds=(1, 2),
)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A tiny learning out folder with finished cga runs for seeds 1 and 2, and a seed-3 run still training
    (its last.pt there, no results.jsonl row)."""
    out = tmp_path_factory.mktemp("learn")
    rows = measure(Setting(out=out, variants=["cga"], **TINY), progress=False)
    (out / "run_cga_s3_2").mkdir()
    shutil.copy(out / "run_cga_s1_2" / "last.pt", out / "run_cga_s3_2" / "last.pt")
    return out, {row["seed"]: row for row in rows}


def run(out, capsys):
    paths_bench.main(["--out", str(out), "--steps", "2", "--seeds", "1", "2", "3", "--threads", "1"])
    return capsys.readouterr().out


def test_every_path_seed_and_case_is_scored_and_paired(learned, capsys):
    out, learning_rows = learned
    printed = run(out, capsys)
    assert "no finished run_cga_s<seed>_2 for seeds [3]: skipped" in printed
    rows = load_results(out / "prediction_paths.jsonl")
    cases = {"SYN_0012_000", "SYN_0012_001"}
    keys = [(r["seed"], r["path"], r["case"]) for r in rows]
    assert sorted(keys) == sorted((s, p, c) for s in (1, 2) for p in paths_bench.PATHS for c in cases)
    for row in rows:
        assert all(0.0 <= row[r] <= 1.0 for r in REGIONS) and row["cpu_s"] > 0 and row["outside"] == 0
        expected = "windows of 16x16x16" if row["path"] == "windows_crop" else "whole box"
        assert paths_bench.plan_kind(row["plan"]) == expected, row["plan"]
    for seed, learning_row in learning_rows.items():  # the whole_box_window path is what benchmarks.learning scores
        default = [r for r in rows if (r["seed"], r["path"]) == (seed, "whole_box_window")]
        for region in REGIONS:
            assert sum(r[region] for r in default) / 2 == pytest.approx(learning_row["test"][region], abs=1e-9)
    report = printed[printed.index("### prediction paths") :]
    assert (out / "prediction_paths" / "report.md").read_text() == report
    assert (out / "prediction_paths" / "prediction_paths.png").stat().st_size > 10_000
    lines = report.splitlines()
    scores = [line for line in lines if line.startswith("| ") and " | 2 | 2 | " in line]
    assert [line.split(":")[0][2:] for line in scores] == list(paths_bench.PATHS)
    (reference,) = [line for line in lines if line.startswith("| windows128 | 2 | 4 |")]
    assert reference.count("+0.000 ± 0.000") == 3 and reference.count("+0.0000") == 6
    assert sum(line.startswith("| ") and " | 2 | " in line for line in lines) == 2 * len(paths_bench.PATHS)
    for path, against in paths_bench.RULES:
        (rule,) = [line for line in lines if line.startswith(f"- {path} vs {against} (2 seeds, 4 paired cases)")]
        assert any(f"**{v}**" in rule for v in ("HOLDS", "holds on the seed mean only", "FAILS"))
    assert "indicative only" in report


def test_a_second_call_recomputes_nothing(learned, capsys, monkeypatch):
    out, _ = learned
    first = run(out, capsys) if not (out / "prediction_paths.jsonl").exists() else None
    before = (out / "prediction_paths.jsonl").read_text()
    report = (out / "prediction_paths" / "report.md").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError(f"predicted again: {args}")

    monkeypatch.setattr(paths_bench, "predict_folder", refuse)
    again = run(out, capsys)
    assert (out / "prediction_paths.jsonl").read_text() == before
    assert again.endswith(report) and (first is None or first.endswith(report))
    only = paths_bench.main(["--out", str(out), "--steps", "2", "--seeds", "1", "2", "--report-only"])
    assert only is None and capsys.readouterr().out == report


def test_the_rule_fails_when_a_region_drops(tmp_path):
    rows = [
        {"path": path, "seed": 1, "case": "c", "cpu_s": 1.0, "outside": 0, "plan": "c: whole box", **dice}
        for path, dice in (
            ("windows128", {"WT": 0.8, "TC": 0.7, "ET": 0.6}),
            ("whole_box", {"WT": 0.8, "TC": 0.694, "ET": 0.6}),
            ("whole_box_bf16", {"WT": 0.8, "TC": 0.694, "ET": 0.6}),
        )
    ]
    report = paths_bench.format_report(rows, "cga", 240)
    rule = "no region drops by more than 0.005 Dice"
    assert f"- whole_box vs windows128 (1 seeds, 1 paired cases): {rule}: **FAILS**" in report
    assert "TC -0.0060" in report
    assert f"- whole_box_bf16 vs whole_box (1 seeds, 1 paired cases): {rule}: **HOLDS**" in report
    paths_bench.plot_paths(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_the_validation_cases_are_scored_apart(learned, capsys):
    out, learning_rows = learned
    test_rows = paths_bench.measured_rows(out, "cga", 2, (1, 2), tuple(paths_bench.PATHS))
    paths_bench.main(["--out", str(out), "--steps", "2", "--seeds", "1", "--paths", "whole_box_crop", "--split", "val"])
    report = capsys.readouterr().out
    val_rows = paths_bench.measured_rows(out, "cga", 2, (1,), ("whole_box_crop",), "val")
    assert len(val_rows) == 1 and val_rows[0]["case"] not in {r["case"] for r in test_rows}
    for region in REGIONS:  # the validation score benchmarks.learning recorded for the same run
        assert val_rows[0][region] == pytest.approx(learning_rows[1]["val"][region], abs=1e-9)
    assert paths_bench.measured_rows(out, "cga", 2, (1, 2), tuple(paths_bench.PATHS)) == test_rows
    assert "### prediction paths of cga (2 steps) on the validation cases" in report
    assert (out / "prediction_paths" / "val" / "report.md").read_text() == report[report.index("### prediction") :]
