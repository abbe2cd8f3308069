"""The named choices: one home, shared by the configs, the blocks, the kernels' contract and the flags."""

import ast
from pathlib import Path

import cga_kernels.modules as kernel_modules
from cga_model.nn import choices
from cga_model.nn.config import ModelConfig
from cga_model.nn.loss_config import LossConfig


def test_choices_module_imports_nothing():
    tree = ast.parse(Path(choices.__file__).read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_mask_modes_match_the_kernels_contract():
    assert choices.MASK_MODES == kernel_modules.MASK_MODES


def test_config_fields_offer_the_shared_choices():
    model = {f.name: f.metadata.get("choices") for f in ModelConfig.__dataclass_fields__.values()}
    loss = {f.name: f.metadata.get("choices") for f in LossConfig.__dataclass_fields__.values()}
    assert model["norm"] is choices.NORMS and model["mask_mode"] is choices.MASK_MODES
    assert model["attention_rate"] == tuple(choices.ATTENTION_STRIDES)
    assert loss["segmentation"] is choices.SEGMENTATION_LOSSES and loss["inter_form"] is choices.INTER_FORMS
