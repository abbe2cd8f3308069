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

# Public names -> the module that defines them, imported on first use: ``import cga_model`` (and so
# ``cga --help``) loads neither torch nor the kernels.
_EXPORTS = {
    "data.labels": ("CLASS_NAMES", "REGIONS", "LabelScheme"),
    "data.layouts": ("LAYOUTS", "MODALITIES", "find_cases"),
    "nn.attention": ("SAM", "AttentionPath", "SAMOutput"),
    "nn.blocks": ("DownConv", "InitConv", "ResBlock", "UpBlock", "make_norm"),
    "nn.config": ("SIZE_MULTIPLE", "ModelConfig"),
    "nn.loss_config": ("LossConfig",),
    "nn.dropin": ("CategoryGuidedAttention", "guided_attention_losses"),
    "nn.losses": (
        "CGALoss",
        "LossTerms",
        "attention_mse_loss",
        "downsample_labels",
        "inter_class_term",
        "softmax_dice_loss",
    ),
    "nn.network": ("CGAOutput", "CGAUNet"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'cga_model' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "__version__",
    "ModelConfig",
    "LossConfig",
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
