"""``LossConfig``: validation, the round trip through checkpoints, and ``CGALoss`` built from it."""

import pytest

from cga_model import CGALoss
from cga_model.nn.loss_config import LossConfig


def test_round_trip_and_unknown_keys():
    config = LossConfig(
        segmentation="dice", attention_weight=20.0, attention_loss="dice_ce", inter_form="official", inter_sign=-1.0
    )
    assert LossConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="last.pt: unknown loss options \\['nope'\\]"):
        LossConfig.from_dict({**config.to_dict(), "nope": 1}, source="last.pt")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("segmentation", "focal", "--loss"),
        ("inter_form", "x", "inter_form"),
        ("attention_loss", "ce", "--attention-loss"),
        ("attention_weight", float("nan"), "--attention-weight"),
        ("dice_weight", -0.5, "--dice-weight"),
        ("inter_start_epoch", 1.5, "--inter-start-epoch"),
        ("inter_sign", 0.5, "inter_sign"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(field, value, message):
    with pytest.raises(ValueError, match=message):
        LossConfig(**{field: value})


def test_cga_loss_takes_a_config_and_overrides():
    config = LossConfig(inter_weight=0.5)
    loss = CGALoss(config, inter_start_epoch=3)
    assert loss.config == LossConfig(inter_weight=0.5, inter_start_epoch=3) and config.inter_start_epoch == 20
    assert not loss.inter_active(2) and loss.inter_active(3)
    assert not CGALoss(inter_weight=0.0, inter_start_epoch=0).inter_active(5)
