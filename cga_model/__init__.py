"""cga_model: the CGA U-Net, its losses, BraTS data pipeline, training, inference and metrics.

Laid out by pipeline stage (each imports only the stages below it): ``data`` (reading, labels,
synthetic cohorts), ``nn`` (ModelConfig, network, attention, losses, checkpoints),
``evaluation`` (metrics, CSV, plots), ``training`` and ``inference``; ``cli``, ``demo`` and
``model_card`` on top. See docs/architecture.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cga-unet")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from .data.labels import CLASS_NAMES, REGIONS, LabelScheme
from .data.layouts import LAYOUTS, MODALITIES, find_cases
from .nn.attention import SAM, AttentionPath, SAMOutput
from .nn.blocks import DownConv, InitConv, ResBlock, UpBlock, make_norm
from .nn.config import SIZE_MULTIPLE, ModelConfig
from .nn.dropin import CategoryGuidedAttention, guided_attention_losses
from .nn.losses import CGALoss, LossTerms, attention_mse_loss, downsample_labels, inter_class_term, softmax_dice_loss
from .nn.network import CGAOutput, CGAUNet

__all__ = [
    "__version__",
    "ModelConfig",
    "CategoryGuidedAttention",
    "guided_attention_losses",
    "SIZE_MULTIPLE",
    "CGAUNet",
    "CGAOutput",
    "SAM",
    "SAMOutput",
    "AttentionPath",
    "InitConv",
    "ResBlock",
    "DownConv",
    "UpBlock",
    "make_norm",
    "CGALoss",
    "LossTerms",
    "softmax_dice_loss",
    "attention_mse_loss",
    "downsample_labels",
    "inter_class_term",
    "CLASS_NAMES",
    "REGIONS",
    "LabelScheme",
    "LAYOUTS",
    "MODALITIES",
    "find_cases",
]
