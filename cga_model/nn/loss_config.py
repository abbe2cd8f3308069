"""``LossConfig``: the one place the options of ``CGALoss`` are spelled.

``CGALoss(config)`` is built from it, ``TrainConfig.loss`` holds it (and so every checkpoint),
the ``cga train`` loss flags are generated from its fields (each field's ``metadata`` carries the
flag and its help line), and the nnU-Net trainer takes it as a class attribute.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .choices import ATTENTION_LOSSES, INTER_FORMS, SEGMENTATION_LOSSES
from .options import from_known_dict, option


@dataclass(frozen=True)
class LossConfig:
    """Options of ``CGALoss`` (paper section 3.1): ``total = dice_weight * L_M + attention_weight * L_A``,
    ``+ inter_weight * inter_sign * L_I`` from epoch ``inter_start_epoch`` on (0-based)."""

    segmentation: str = option(
        "dice_ce",
        "segmentation loss: dice_ce = the paper's Dice + cross-entropy (learns on full-size volumes); "
        "dice = the paper's softmax Dice over the tumour classes (collapses on full-size volumes)",
        flag="--loss",
        choices=SEGMENTATION_LOSSES,
    )
    dice_weight: float = option(1.0, "weight of the segmentation loss L_M")
    attention_weight: float = option(
        1.0,
        "weight of the attention MSE: 1 = paper, 20 = released code (with hard masks only the attention path learns "
        "from this term, and Adam's per-parameter steps make its scale nearly irrelevant)",
    )
    attention_loss: str = option(
        "mse",
        "attention loss L_A: mse = the paper's MSE against the one-hot guided map; dice_ce = Dice + cross-entropy on "
        "the attention logits (the tumour classes weigh as much as the background)",
        choices=ATTENTION_LOSSES,
    )
    inter_weight: float = option(0.1, "weight of the inter-class term")
    inter_form: str = option("paper", "inter-class loss: paper formula or released code's", choices=INTER_FORMS)
    inter_start_epoch: int = option(20, "first epoch (0-based) with the inter-class term")
    inter_sign: float = option(
        1.0,
        "'Baseline - Inter': minimise the inter-class distance",
        flag="--reverse-inter",
        action="store_const",
        const=-1.0,
    )

    def __post_init__(self):
        if self.segmentation not in SEGMENTATION_LOSSES:
            raise ValueError(
                f"segmentation loss (--loss) must be one of {SEGMENTATION_LOSSES}, got {self.segmentation!r}"
            )
        if self.attention_loss not in ATTENTION_LOSSES:
            raise ValueError(
                f"attention loss (--attention-loss) must be one of {ATTENTION_LOSSES}, got {self.attention_loss!r}"
            )
        if self.inter_form not in INTER_FORMS:
            raise ValueError(f"inter_form must be one of {INTER_FORMS}, got {self.inter_form!r}")
        if self.inter_sign not in (1, -1):
            raise ValueError(f"inter_sign must be 1 or -1, got {self.inter_sign!r}")
        for name in ("dice_weight", "attention_weight", "inter_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a finite number >= 0, got {value!r}")
        start = self.inter_start_epoch
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"inter_start_epoch (--inter-start-epoch) must be an int >= 0, got {start!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict, source: str = "config") -> LossConfig:
        """Rebuild from ``to_dict()``; unknown keys are refused, naming them and ``source``."""
        return from_known_dict(cls, saved, source, "loss")
