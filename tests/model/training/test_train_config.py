"""TrainConfig.check: every finite in-range flag value is accepted; any non-finite or out-of-range one is
refused, naming its flag, by train() and by cga train before anything is written."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cga_model.cli import main as cga
from cga_model.training.loop import train
from cga_model.training.train_config import TrainConfig, check_split

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
multiples = st.integers(1, 32).map(lambda n: 8 * n)

VALID = {
    "lr": st.floats(1e-9, 10.0),
    "weight_decay": st.floats(0.0, 1.0),
    "epochs": st.integers(1, 10_000),
    "batch_size": st.integers(1, 512),
    "crop": st.tuples(multiples, multiples, multiples),
    "foreground_share": st.floats(0.0, 1.0),
    "val_fraction": st.floats(0.0, 1.0, exclude_max=True),
    "sequence_dropout": st.floats(0.0, 1.0, exclude_max=True),
    "val_every": st.integers(1, 1000),
    "workers": st.none() | st.integers(0, 64),
    "seed": st.integers(0, 2**31),
}
not_multiple = st.integers(-64, 300).filter(lambda n: n <= 0 or n % 8)
INVALID = {
    "lr": NON_FINITE | st.floats(max_value=0.0, allow_infinity=False),
    "weight_decay": NON_FINITE | st.floats(max_value=-1e-12, allow_infinity=False),
    "epochs": st.integers(max_value=0),
    "batch_size": st.integers(max_value=0),
    "crop": st.tuples(not_multiple, multiples, multiples).flatmap(st.permutations),
    "foreground_share": NON_FINITE | st.floats(1.0, exclude_min=True) | st.floats(max_value=0.0, exclude_max=True),
    "val_fraction": NON_FINITE | st.floats(1.0, allow_infinity=False) | st.floats(max_value=-1e-12),
    "sequence_dropout": NON_FINITE | st.floats(1.0, allow_infinity=False) | st.floats(max_value=-1e-12),
    "val_every": st.integers(max_value=0),
    "workers": st.integers(max_value=-1),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@SETTINGS
@given(st.fixed_dictionaries(VALID))
def test_finite_in_range_values_are_accepted(values):
    TrainConfig(data="d", out="o", **values).check()


@SETTINGS
@given(st.sampled_from(sorted(INVALID)).flatmap(lambda name: st.tuples(st.just(name), INVALID[name])))
def test_any_out_of_range_value_is_refused_naming_its_flag(bad):
    name, value = bad
    with pytest.raises(ValueError, match=f"^{_flag(name)} must be"):
        TrainConfig(data="d", out="o", **{name: value}).check()


@SETTINGS
@given(st.sampled_from(sorted(INVALID)).flatmap(lambda name: st.tuples(st.just(name), INVALID[name])))
def test_train_refuses_before_reading_or_writing(tmp_path, bad):
    name, value = bad
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=_flag(name)):
        train(TrainConfig(data=str(tmp_path / "no-data"), out=str(out), **{name: value}), progress=False)
    assert not out.exists()


@pytest.mark.parametrize(
    "flag",
    [
        ["--lr", "inf"],
        ["--lr", "nan"],
        ["--lr", "-1"],
        ["--weight-decay", "-0.1"],
        ["--batch-size", "0"],
        ["--foreground-share", "2"],
        ["--crop", "20", "16", "16"],
        ["--val-fraction", "1"],
        ["--val-fraction", "-0.2"],
        ["--val-every", "0"],
        ["--workers", "-1"],
        ["--sequence-dropout", "1"],
    ],
)
def test_cga_train_refuses_each_bad_flag_in_one_line(tmp_path, flag, capsys):
    out = tmp_path / "run"
    assert cga(["train", "--data", str(tmp_path), "--out", str(out), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cga train: error: {flag[0]} must be") and "\n" not in err and not out.exists()


def test_a_validation_share_of_a_single_case_is_refused():
    check_split(0.0, 1, "d")
    with pytest.raises(ValueError, match="--val-fraction 0.2: d holds 1 case"):
        check_split(0.2, 1, "d")
