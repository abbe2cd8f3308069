"""Checkpoints: written atomically, loaded with ``weights_only=True`` (never executing code)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.nifti_io import atomic_write

# config keys that change the network's shape: a checkpoint must match them to be loaded
MODEL_KEYS = ("in_channels", "num_classes", "base_channels", "norm", "sam", "intra", "intra_classes", "inter", "attention_rate", "mask_mode")


def save_checkpoint(path, **state) -> None:
    """Save ``state`` (tensors, state dicts, numbers, strings, lists, dicts) atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path) -> dict:
    """Load a checkpoint safely (``weights_only=True``), with a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot load checkpoint {path} (weights_only=True): {err}") from err


def model_config(config: dict) -> dict:
    """The network-shaping subset of a training config."""
    return {k: config[k] for k in MODEL_KEYS if k in config}


def check_compatible(saved: dict, wanted: dict, path) -> None:
    """Refuse a checkpoint from another network configuration, naming the differing keys."""
    a, b = model_config(saved), model_config(wanted)
    diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    if diff:
        details = ", ".join(f"{k}: checkpoint {v[0]!r} vs requested {v[1]!r}" for k, v in sorted(diff.items()))
        raise ValueError(f"checkpoint {path} is from another model configuration ({details})")
