"""The paper's training augmentation: random flips, then a per-channel intensity scale and shift inside the brain;
and sequence dropout (``--sequence-dropout``): input sequences zero-filled as a missing one is at prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Augmentation:
    """The paper's augmentation of one sample: ``flips[a]`` flips spatial axis ``a`` (image and labels alike);
    then per channel ``x * scale + shift`` inside the brain, ``scale (C,)`` ~ U(0.9, 1.1) and
    ``shift (C,)`` ~ U(-0.1, 0.1), float32 (``jitter_intensity`` applies them, on the training device)."""

    flips: tuple
    scale: np.ndarray
    shift: np.ndarray


def draw_augmentation(rng: np.random.Generator, channels: int) -> Augmentation:
    """Draw one sample's augmentation from ``rng``: three flips (p=0.5 each), then scales, then shifts."""
    flips = tuple(bool(rng.random() < 0.5) for _ in range(3))
    scale = rng.uniform(0.9, 1.1, size=channels).astype(np.float32)
    shift = rng.uniform(-0.1, 0.1, size=channels).astype(np.float32)
    return Augmentation(flips, scale, shift)


def no_augmentation(channels: int) -> Augmentation:
    """The identity: no flip, scale 1 and shift 0 on every channel."""
    return Augmentation(
        (False, False, False), np.ones(channels, dtype=np.float32), np.zeros(channels, dtype=np.float32)
    )


def jitter_intensity(image: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``image (B, C, *S)`` (any float dtype) as float32, ``x * scale[b, c] + shift[b, c]`` inside the brain
    (voxels non-zero in any channel), 0 outside; ``scale``, ``shift`` ``(B, C)``. A new tensor."""
    view = (image.shape[0], image.shape[1]) + (1,) * (image.dim() - 2)
    brain = (image != 0).any(dim=1, keepdim=True)
    image = image.float() * scale.float().view(view)
    return image.add_(shift.float().view(view) * brain)


def draw_sequence_dropout(rng: np.random.Generator, channels: int, rate: float) -> np.ndarray:
    """``keep (C,)`` bool of one sample, drawn from ``rng`` after its other augmentations: each sequence dropped
    with probability ``rate``, never all of them (when every one is drawn, one drawn uniformly is kept, so a
    sequence is dropped slightly less often than ``rate``: ``rate - rate**C / C``). ``rate`` 0 keeps every
    sequence and leaves ``rng`` untouched, so a sample's other draws are those of a run without dropout."""
    if rate <= 0:
        return np.ones(channels, dtype=bool)
    keep = rng.random(channels) >= rate
    if not keep.any():
        keep[rng.integers(channels)] = True
    return keep


def drop_sequences(image: np.ndarray, jitter: np.ndarray, keep: np.ndarray) -> None:
    """In place: the channels of ``image (C, *S)`` not in ``keep (C,)`` set to 0, and their intensity scale and
    shift (``jitter (2, C)``) to 0, so that ``jitter_intensity`` leaves them 0 and they take no part in the brain:
    a dropped sequence is what a missing one is at prediction (``cga predict --allow-missing``)."""
    image[~keep] = 0
    jitter[:, ~keep] = 0
