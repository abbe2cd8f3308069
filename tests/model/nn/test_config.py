"""ModelConfig: the one source of the network's options, through the network, checkpoints and predict."""

import dataclasses

import pytest
import torch

from cga_model import CGAUNet, ModelConfig
from cga_model.nn.checkpoint import check_compatible, load_model, save_checkpoint, saved_model_config
from cga_model.training.loop import TrainConfig


def test_network_is_built_from_its_config_and_keywords_still_work():
    config = ModelConfig(base_channels=4, attention_rate=4, mask_mode="soft", dropout=0.0, intra_classes=[1, 2])
    a, b = CGAUNet(config), CGAUNet.from_config(config.to_dict())
    c = CGAUNet(base_channels=4, attention_rate=4, mask_mode="soft", dropout=0.0, intra_classes=[1, 2])
    assert a.config == b.config == c.config == config and config.intra_classes == (1, 2)
    assert [tuple(p.shape) for p in a.parameters()] == [tuple(p.shape) for p in c.parameters()]
    assert CGAUNet().config == ModelConfig() and CGAUNet(config, sam=False).sam is None
    assert a.init_conv.dropout.p == 0.0 and a.sam.attention_path.rate == 4


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(attention_rate=3), "attention_rate must be one of"),
        (dict(norm="ln"), "norm must be one of"),
        (dict(base_channels=0), "base_channels must be a positive int"),
        (dict(mask_mode="x"), "mask_mode must be one of"),
        (dict(attention_path="tanh"), "attention_path must be one of"),
        (dict(dropout=1.5), "dropout must be a probability"),
        (dict(in_channels=True), "in_channels must be a positive int"),
    ],
)
def test_invalid_options_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**bad)
    with pytest.raises(ValueError, match=message):
        CGAUNet(**bad)


def test_unknown_saved_option_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"ckpt.pt: unknown model options \['widht'\]"):
        ModelConfig.from_dict({"widht": 3}, source="ckpt.pt")


def _save(path, model_state, config_dict):
    save_checkpoint(path, model=model_state, config=config_dict)


def test_checkpoint_stores_the_config_and_load_model_rebuilds_it(tmp_path):
    config = TrainConfig(data="d", out="o", model=ModelConfig(base_channels=4, sam=False, dropout=0.1))
    model = CGAUNet(config.model)
    _save(tmp_path / "c.pt", model.state_dict(), config.to_dict())
    saved = torch.load(tmp_path / "c.pt", weights_only=True)["config"]["model"]
    assert saved == config.model.to_dict() and saved["dropout"] == 0.1
    loaded, train_config = load_model(tmp_path / "c.pt")
    assert loaded.config == config.model and not loaded.training and train_config["model"] == saved
    x = torch.randn(1, 4, 8, 8, 8)
    torch.testing.assert_close(loaded(x).logits, model.eval()(x).logits)


def test_checkpoint_of_version_0_1_0_with_flat_options_still_loads(tmp_path):
    model = CGAUNet(base_channels=4)
    flat = {
        "data": "d",
        "out": "o",
        "epochs": 3,
        **{k: v for k, v in ModelConfig(base_channels=4).to_dict().items() if k != "attention_channels"},
    }
    _save(tmp_path / "old.pt", model.state_dict(), flat)
    loaded, _ = load_model(tmp_path / "old.pt")
    assert loaded.config == ModelConfig(base_channels=4)


def test_a_saved_config_without_attention_path_is_rebuilt_with_the_linear_path(tmp_path):
    """Networks saved before the option existed had the linear path, whatever the default is now."""
    saved = {k: v for k, v in ModelConfig(base_channels=4).to_dict().items() if k != "attention_path"}
    assert ModelConfig.from_dict(saved).attention_path == "linear"
    relu = ModelConfig(base_channels=4, attention_path="relu")
    assert ModelConfig.from_dict(relu.to_dict()) == relu
    _save(tmp_path / "relu.pt", CGAUNet(relu).state_dict(), {"model": relu.to_dict()})
    loaded, _ = load_model(tmp_path / "relu.pt")
    assert loaded.sam.attention_path.kind == "relu"
    features = ModelConfig(base_channels=4, attention_path="features")
    _save(tmp_path / "features.pt", CGAUNet(features).state_dict(), {"model": features.to_dict()})
    loaded, _ = load_model(tmp_path / "features.pt")
    assert loaded.config == features and loaded.sam.from_features


def test_another_configuration_is_refused_naming_each_option(tmp_path):
    saved = ModelConfig(base_channels=4)
    with pytest.raises(
        ValueError, match=r"base_channels: checkpoint 4 vs requested 8.*dropout: checkpoint 0.2 vs requested 0.3"
    ):
        check_compatible(saved, dataclasses.replace(saved, base_channels=8, dropout=0.3), "last.pt")
    check_compatible(saved, ModelConfig(base_channels=4), "last.pt")
    with pytest.raises(ValueError, match="not a cga training checkpoint"):
        saved_model_config({"model": {}}, "x.pt")
