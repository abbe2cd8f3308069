"""cga_model: the CGA U-Net, its losses, BraTS data pipeline, training, inference and metrics."""

from .nn.attention import SAM, AttentionPath, SAMOutput
from .nn.blocks import DownConv, InitConv, ResBlock, UpBlock, make_norm
from .data.labels import BRATS_LABELS, REGIONS, classes_to_labels, labels_to_classes
from .nn.losses import CGALoss, LossTerms, attention_mse_loss, downsample_labels, inter_class_term, softmax_dice_loss
from .nn.network import CGAOutput, CGAUNet

__all__ = [
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
    "BRATS_LABELS",
    "REGIONS",
    "labels_to_classes",
    "classes_to_labels",
]
