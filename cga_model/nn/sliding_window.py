"""A network applied to a whole volume: sliding windows with Gaussian blending, flip TTA, the brain mask.

Both ``cga predict`` (``inference/``) and training's validation (``training/``) segment whole
volumes this way, so it sits on the floor below them. The window (ROI) is the training crop by
default: a whole-volume forward pass does not fit a GPU for wider models, and GroupNorm
statistics differ between a crop and a whole volume.

Brain mask (``brain_only=True``, the default of ``cga predict`` and validation): BraTS images
are skull-stripped, so a voxel that is zero in every modality is outside the head and is
background; only the brain's bounding box is segmented (about a fifth of a 240x240x155 grid)
and every voxel outside the brain gets probability 1 for background.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..data.brain import brain_box
from .config import SIZE_MULTIPLE


def gaussian_weight(roi, sigma_scale: float = 0.125) -> torch.Tensor:
    """Importance map ``(*roi)``: a Gaussian centred in the window, sigma = roi * sigma_scale."""
    axes = [
        torch.exp(-0.5 * ((torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / (s * sigma_scale)) ** 2) for s in roi
    ]
    weight = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (weight / weight.max()).clamp_min(1e-3)


def _starts(size: int, window: int, step: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window, step)) + [size - window]
    return sorted(set(starts))


@torch.no_grad()
def sliding_window_probs(model, image: torch.Tensor, roi, *, overlap: float = 0.5) -> torch.Tensor:
    """Class probabilities ``(K, *S)`` of ``image (C, *S)``, windows of ``roi`` blended with Gaussian weights.

    ``S`` and ``roi`` must be multiples of ``SIZE_MULTIPLE`` (8); a volume no larger than ``roi`` is one forward pass.
    """
    spatial = image.shape[1:]
    roi = [min(r, s) for r, s in zip(roi, spatial)]
    if list(roi) == list(spatial):
        return model(image[None]).logits[0].float().softmax(0)
    weight = gaussian_weight(roi).to(image.device)
    steps = [max(1, int(r * (1 - overlap))) for r in roi]
    probs, norm = None, torch.zeros(spatial, device=image.device)
    for corner in itertools.product(*[_starts(s, r, st) for s, r, st in zip(spatial, roi, steps)]):
        window = tuple(slice(c, c + r) for c, r in zip(corner, roi))
        out = model(image[(slice(None),) + window][None]).logits[0].float().softmax(0)
        if probs is None:
            probs = torch.zeros((out.shape[0],) + tuple(spatial), device=image.device)
        probs[(slice(None),) + window] += out * weight
        norm[window] += weight
    return probs / norm


@torch.no_grad()
def predict_probs(model, image: torch.Tensor, roi, *, overlap: float = 0.5, tta: bool = False) -> torch.Tensor:
    """Sliding-window probabilities, averaged over the 8 axis-flip combinations with ``tta``."""
    flips = [()] if not tta else [f for n in range(4) for f in itertools.combinations((1, 2, 3), n)]
    total = None
    for dims in flips:
        flipped = image.flip(dims) if dims else image
        probs = sliding_window_probs(model, flipped, roi, overlap=overlap)
        probs = probs.flip(dims) if dims else probs
        total = probs if total is None else total + probs
    return total / len(flips)


def _padded_probs(model, image: torch.Tensor, roi, *, overlap: float, tta: bool) -> torch.Tensor:
    """``predict_probs`` of ``image (C, *S)`` zero-padded at the end to multiples of ``SIZE_MULTIPLE``, cut back to ``S``."""
    spatial = image.shape[1:]
    pads = [(-s) % SIZE_MULTIPLE for s in spatial]
    padded = F.pad(image, [p for pad in reversed(pads) for p in (0, pad)]) if any(pads) else image
    probs = predict_probs(model, padded, roi, overlap=overlap, tta=tta)
    return probs[(slice(None),) + tuple(slice(0, s) for s in spatial)]


@torch.no_grad()
def segment_volume(
    model, image: torch.Tensor, roi, *, overlap: float = 0.5, tta: bool = False, brain_only: bool = True
) -> torch.Tensor:
    """Class probabilities ``(K, X, Y, Z)`` of a normalised ``image (C, X, Y, Z)`` (any size: padded as needed).

    ``brain_only``: only the bounding box of the brain (voxels non-zero in any channel) is run through
    the network, and every voxel outside the brain is background with probability 1 (so ``argmax``
    never puts tumour outside the head). Without it the whole volume is segmented as it is.
    ``roi``: the window, multiples of ``SIZE_MULTIPLE``.
    """
    if not brain_only:
        return _padded_probs(model, image, roi, overlap=overlap, tta=tta)
    brain = (image != 0).any(dim=0)
    box = tuple(slice(a, b) for a, b in brain_box(brain.cpu().numpy()))
    inside = _padded_probs(model, image[(slice(None),) + box], roi, overlap=overlap, tta=tta)
    probs = torch.zeros((inside.shape[0],) + tuple(image.shape[1:]), device=image.device)
    probs[0] = 1.0
    probs[(slice(None),) + box] = inside
    probs[:, ~brain] = 0.0
    probs[0][~brain] = 1.0
    return probs
