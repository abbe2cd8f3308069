"""Checkpoints: written atomically, loaded with ``weights_only=True`` (never executing code), and what they
record of the data a network was trained on (layout, label scheme, channel order)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..data.errors import DataError
from ..data.file_safety import atomic_write
from ..data.labels import same_classes
from ..data.layouts import MODALITIES, get_layout
from .config import ModelConfig
from .network import CGAUNet


def save_checkpoint(path, **state) -> None:
    """Save ``state`` (tensors, state dicts, numbers, strings, lists, dicts) atomically.

    A failed write (a full disk, a file-size limit, a lost mount) raises ``WriteFailed`` (an ``OSError``) naming
    ``path``, the space left on its file system and torch's own message (which names neither); the file there
    stays as it was."""
    atomic_write(path, lambda tmp: torch.save(state, tmp), what="the checkpoint", failures=(OSError, RuntimeError))


def load_checkpoint(path) -> dict:
    """Load a checkpoint safely (``weights_only=True``), with a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own text advises weights_only=False, which we never do: it is left out
        raise ValueError(
            f"{path} is not a cga checkpoint (a best.pt or last.pt of cga train): it is damaged, of another "
            f"format, or holds objects other than tensors and plain data, which are never loaded ({type(err).__name__})"
        ) from err


def saved_model_config(state: dict, path) -> ModelConfig:
    """The ``ModelConfig`` a training checkpoint was made with (``state["config"]["model"]``).

    Checkpoints of version 0.1.0 kept the model options flat in ``state["config"]``; they are read too.
    """
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ValueError(f"{path} is not a cga training checkpoint (needs 'model' and 'config')")
    config = state["config"]
    if isinstance(config.get("model"), dict):
        return ModelConfig.from_dict(config["model"], source=str(path))
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig.from_dict({k: v for k, v in config.items() if k in names}, source=str(path))


def check_compatible(saved: ModelConfig, wanted: ModelConfig, path) -> None:
    """Refuse a checkpoint from another model configuration, naming the differing options."""
    a, b = saved.to_dict(), wanted.to_dict()
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    if diff:
        details = ", ".join(f"{k}: checkpoint {v[0]!r} vs requested {v[1]!r}" for k, v in sorted(diff.items()))
        raise ValueError(f"checkpoint {path} is from another model configuration ({details})")


def load_model(checkpoint, device="cpu"):
    """Rebuild the network from a training checkpoint's ``ModelConfig`` and load its weights (weights_only).

    Returns ``(model in eval mode on device, the checkpoint's training config dict)``.
    """
    state = load_checkpoint(checkpoint)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{checkpoint} is not a cga training checkpoint (needs 'model' and 'config')")
    model = CGAUNet.from_config(saved_model_config(state, checkpoint))
    load_weights(model, state["model"], checkpoint, "its own configuration")
    return model.to(device).eval(), state["config"]


def _shape(value) -> str:
    return "x".join(map(str, value.shape)) if hasattr(value, "shape") else type(value).__name__


def weight_mismatch(own: dict, stored) -> str:
    """What keeps the state dict ``stored`` from loading into a network whose state dict is ``own``, in one
    short clause (counts, and the first weight of each kind); empty when it fits."""
    if not isinstance(stored, dict):
        return f"its weights are a {type(stored).__name__}, not a state dict"
    parts = []
    resized = [k for k in own if k in stored and _shape(stored[k]) != _shape(own[k])]
    if resized:
        first = resized[0]
        parts.append(
            f"{len(resized)} weights of another shape (first {first}: {_shape(stored[first])} stored, "
            f"{_shape(own[first])} in the network)"
        )
    for what, names in (
        ("missing", [k for k in own if k not in stored]),
        ("unknown", [k for k in stored if k not in own]),
    ):
        if names:
            parts.append(f"{len(names)} {what} (first {names[0]})")
    return ", ".join(parts)


def load_weights(model: torch.nn.Module, stored, checkpoint, built_from: str) -> None:
    """Load the state dict ``stored`` of ``checkpoint`` into ``model`` (built from ``built_from``, e.g. "its own
    configuration"); a mismatch raises one short ``ValueError`` (``weight_mismatch``), never torch's list of
    every key."""
    problem = weight_mismatch(model.state_dict(), stored)
    if not problem:
        try:
            model.load_state_dict(stored)
        except (RuntimeError, TypeError, ValueError) as err:
            problem = " ".join(str(err).split())[:200]
    if problem:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit the network of {built_from}: {problem}; it was edited or is not "
            "a checkpoint of this cga's train: use a best.pt or last.pt written by cga train"
        )


def data_record(layout: str) -> dict:
    """What a training run records about its data (in ``TrainConfig`` and so in every checkpoint):
    ``{"layout", "label_scheme", "channels"}``; ``channels``: the layout's sequences, the network's input order."""
    chosen = get_layout(layout)
    return {"layout": layout, "label_scheme": chosen.scheme.to_dict(), "channels": list(chosen.modalities)}


def trained_layout(config: dict) -> str:
    """The layout a checkpoint's training config names (checkpoints from before layouts: ``brats2021``)."""
    return config.get("layout") or "brats2021"


def model_channel_order(config: dict, checkpoint, layout: str | None = None) -> list:
    """Indices into the image channels of ``layout``'s cases (``Layout.modalities``; default ``MODALITIES``)
    giving the channel order a checkpoint's network was trained with (its ``channels``; before layouts:
    ``MODALITIES``). Raises naming the files when the layout's cases lack a sequence the network needs."""
    channels = list(config.get("channels") or MODALITIES)
    unknown = [c for c in channels if c not in MODALITIES]
    if unknown:
        raise DataError(
            f"checkpoint {checkpoint} was trained on modalities {channels}; {unknown} are not in any layout this "
            f"cga reads {MODALITIES}"
        )
    have = get_layout(layout).modalities if layout is not None else MODALITIES
    missing = [c for c in channels if c not in have]
    if missing:
        raise DataError(
            f"checkpoint {checkpoint} needs the sequences {', '.join(channels)}, but {layout} cases have only "
            f"{', '.join(have)} (no {', '.join(missing)} files): use a model trained on {', '.join(have)}"
        )
    return [have.index(c) for c in channels]


def check_model_fits(num_classes: int, config: dict, layout: str, checkpoint) -> None:
    """Refuse to write predictions of a ``num_classes``-class model in ``layout``'s scheme when the scheme
    cannot write every class as the same tissue (a brats2024 model's resection cavity in brats2023
    files; any GLI model in PED files, whose label 1 is enhancing tumour)."""
    scheme = get_layout(layout).scheme
    trained = get_layout(trained_layout(config)).scheme.tissues[:num_classes]
    lacking = same_classes(trained, scheme)
    if lacking:
        names = ", ".join(trained[k] for k in lacking)
        raise DataError(
            f"checkpoint {checkpoint} (trained on {trained_layout(config)}) predicts {num_classes} classes, but the "
            f"input's {layout} scheme ({scheme.describe()}) has no label for: {names}; pass --layout with a layout "
            "that has (e.g. brats2024 for post-treatment data in BraTS 2023 file names), or use a model trained "
            "on this cohort"
        )
