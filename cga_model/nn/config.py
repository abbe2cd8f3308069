"""``ModelConfig``: the one place the CGA U-Net's options are spelled.

The network is built from it (``CGAUNet(config)``), the training config holds it
(``TrainConfig.model``), checkpoints store it (``ModelConfig.to_dict``), inference rebuilds the
network from it, and the ``cga train`` flags are generated from its fields: each field's
``metadata`` carries the flag's help line (and ``cli=False`` for options the data fix).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .choices import ATTENTION_PATHS, ATTENTION_STRIDES, MASK_MODES, NORMS
from .options import from_known_dict, option

#: Spatial sizes must be multiples of this: three stride-2 encoder levels (and the SAM's rate <= 8).
SIZE_MULTIPLE = 8


#: The value of an option in configs saved before it existed: what those networks were built with.
SAVED_BEFORE = {"attention_path": "linear"}


@dataclass(frozen=True)
class ModelConfig:
    """Options of ``CGAUNet`` (see its docstring for what each one builds)."""

    in_channels: int = option(4, "image channels (the 4 MR sequences)", cli=False)
    num_classes: int = option(4, "K: background + three tumour classes", cli=False)
    base_channels: int = option(16, "c, channels of the first level (16 in the paper)")
    norm: str = option(
        "bn", "normalisation of the residual blocks (bn = Table 1, the default; gn = released code)", choices=NORMS
    )
    sam: bool = option(True, "the supervised attention module (SAM; without it: the baseline U-Net)")
    intra: bool = option(True, "the intra-class update")
    intra_classes: tuple | None = option(
        None, "class indices the update writes back (default: all classes)", nargs="+", type=int
    )
    update_gate: bool = option(
        False,
        "a learned gate on the intra-class update, starting at 0: x + g * scatter(pool(x)) (paper: g = 1; "
        "no effect without the SAM's update)",
    )
    inter: bool = option(True, "prototypes for the inter-class loss")
    attention_rate: int = option(
        8, "attention down-sampling rate (paper Table 3)", choices=tuple(ATTENTION_STRIDES), type=int
    )
    mask_mode: str = option(
        "hard", "hard = argmax of the attention (released code), soft = softmax weights", choices=MASK_MODES
    )
    attention_path: str = option(
        "linear",
        "the attention path: linear = three convolutions of the image (released code), relu = a ReLU between "
        "them, features = a 1x1 convolution of the feature map the update changes",
        choices=ATTENTION_PATHS,
    )
    dropout: float = option(0.2, "channel dropout after InitConv (training only)")
    attention_channels: int = option(16, "width of the attention conv path", cli=False)

    def __post_init__(self):
        if self.intra_classes is not None and not isinstance(self.intra_classes, tuple):
            object.__setattr__(self, "intra_classes", tuple(self.intra_classes))
        for name in ("in_channels", "num_classes", "base_channels", "attention_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.attention_rate not in ATTENTION_STRIDES or isinstance(self.attention_rate, bool):
            raise ValueError(f"attention_rate must be one of {sorted(ATTENTION_STRIDES)}, got {self.attention_rate!r}")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        if self.attention_path not in ATTENTION_PATHS:
            raise ValueError(f"attention_path must be one of {ATTENTION_PATHS}, got {self.attention_path!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout <= 1:
            raise ValueError(f"dropout must be a probability in [0, 1], got {self.dropout!r}")

    def to_dict(self) -> dict:
        """Plain types only (what ``torch.load(weights_only=True)`` reads back)."""
        saved = dataclasses.asdict(self)
        saved["intra_classes"] = None if self.intra_classes is None else list(self.intra_classes)
        return saved

    @classmethod
    def from_dict(cls, saved: dict, source: str = "config") -> ModelConfig:
        """Rebuild from ``to_dict()``; unknown keys are refused, naming them and ``source``. A config saved before
        ``attention_path`` existed had the linear path (``SAVED_BEFORE``), whatever today's default."""
        return from_known_dict(cls, {**SAVED_BEFORE, **saved}, source, "model")
