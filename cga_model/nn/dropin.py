"""Category-guided attention for an existing 2-D or 3-D network, without editing its source.

``CategoryGuidedAttention(network, module_name, num_classes, ...)`` wraps the host network and
registers a forward hook on its submodule ``module_name``: the hook computes attention logits
(``head="input"``: the paper's attention conv path ``cga_model.attention.AttentionPath`` on the
network input, ``log2(rate)`` of its three convs with stride 2; ``head="feature"``: a 1x1 conv on the hooked feature
map), applies ``cga_kernels.IntraClassUpdate`` to the feature map and returns the updated map in its place.
``forward(x)`` returns ``GuidedOutput(output, attention, prototypes, counts)``;
``guided_attention_losses(result, labels)`` gives the attention MSE and inter-class terms for
the training loop (``total = host_loss + attention_weight * mse + inter_weight * inter``).
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import torch
from torch import nn

import cga_kernels as ck

from .attention import AttentionPath, conv_class
from .losses import attention_loss, inter_class_term


class GuidedOutput(NamedTuple):
    """``output``: the host network's output; ``attention``: ``(B, K, *S_att)`` logits;
    ``prototypes``: ``(B, K, C_f)``; ``counts``: ``(B, K)`` (C_f = channels of the hooked map)."""

    output: Any
    attention: torch.Tensor
    prototypes: torch.Tensor
    counts: torch.Tensor


class GuidedLosses(NamedTuple):
    attention: torch.Tensor
    inter: torch.Tensor


class CategoryGuidedAttention(nn.Module):
    """Adds the supervised category-guided attention recipe to ``network`` at ``module_name``.

    Args:
        network: the host network (not modified; its submodule gets a forward hook).
        module_name: name in ``network.named_modules()`` whose output tensor ``(B, C_f, *S_f)`` is updated.
        num_classes: K.
        head: ``"input"`` (attention conv path on the network input; needs ``in_channels`` and
            ``rate`` = input size / feature size) or ``"feature"`` (1x1 conv on the feature map;
            needs ``feature_channels``).
        mode: ``"hard"`` (argmax) or ``"soft"`` (softmax, differentiable) masks.
        classes: restrict the update to these classes.

    ``detach()`` removes the hook (``hook_handle``) and gives the host network back unchanged.
    """

    def __init__(
        self,
        network: nn.Module,
        module_name: str,
        num_classes: int,
        *,
        head: str = "input",
        in_channels: int | None = None,
        rate: int | None = None,
        feature_channels: int | None = None,
        spatial_dims: int = 3,
        mode: str = "hard",
        classes=None,
    ):
        super().__init__()
        modules = dict(network.named_modules())
        if module_name not in modules:
            close = difflib.get_close_matches(module_name, [n for n in modules if n], n=5, cutoff=0.4)
            raise ValueError(f"network has no submodule {module_name!r}" + (f"; close names: {close}" if close else ""))
        if head == "input":
            if in_channels is None or rate is None:
                raise ValueError("head='input' needs in_channels and rate (input size / feature-map size)")
            self.head = AttentionPath(in_channels, num_classes, rate=rate, spatial_dims=spatial_dims)
        elif head == "feature":
            if feature_channels is None:
                raise ValueError("head='feature' needs feature_channels (channels of the hooked feature map)")
            self.head = conv_class(spatial_dims)(feature_channels, num_classes, 1)
        else:
            raise ValueError(f"head must be 'input' or 'feature', got {head!r}")
        self.network = network
        self.module_name, self.head_kind = module_name, head
        self.update = ck.IntraClassUpdate(num_classes, mode=mode, classes=classes)
        self._image: torch.Tensor | None = None
        self._extras = None
        self.hook_handle = modules[module_name].register_forward_hook(self._hook)

    def detach(self) -> nn.Module:
        """Remove the forward hook and return the host network, as it was before wrapping."""
        self.hook_handle.remove()
        return self.network

    def _hook(self, module, args, output):
        if self._image is None:  # the host called on its own, outside this wrapper: leave it untouched
            return output
        if not isinstance(output, torch.Tensor) or output.dim() != self._image.dim():
            raise ValueError(
                f"module {self.module_name!r} must output one feature tensor (B, C, *S) like the input, "
                f"got {type(output).__name__}"
            )
        attention = self.head(self._image if self.head_kind == "input" else output)
        for a, f in zip(attention.shape[2:], output.shape[2:]):
            if max(a, f) % min(a, f):
                raise ValueError(
                    f"attention map {tuple(attention.shape[2:])} cannot be matched to the feature map "
                    f"{tuple(output.shape[2:])} of {self.module_name!r}: "
                    "sizes must be equal or integer multiples; fix rate"
                )
        features, prototypes, counts = self.update(output, attention)
        self._extras = (attention, prototypes, counts)
        return features

    def forward(self, x: torch.Tensor) -> GuidedOutput:
        self._image, self._extras = x, None
        try:
            output = self.network(x)
        finally:
            self._image = None
        if self._extras is None:
            raise RuntimeError(f"submodule {self.module_name!r} was not called during the network's forward")
        return GuidedOutput(output, *self._extras)


def guided_attention_losses(
    result: GuidedOutput, labels: torch.Tensor, form: str = "paper", attention: str = "mse"
) -> GuidedLosses:
    """The attention loss against the nearest-down-sampled ``labels (B, *S)`` (``attention``: ``"mse"`` against
    their one-hot, or ``"dice_ce"``; ``cga_model.nn.losses.attention_loss``) and the inter-class loss (``form``)."""
    return GuidedLosses(
        attention_loss(result.attention, labels, attention), inter_class_term(result.prototypes, result.counts, form)
    )
