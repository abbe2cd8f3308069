"""The field the SAM pools its prototypes over at inference: a window around each voxel, tiles the size of the
training crop, or each network input.

Training pools one prototype per class over each random crop (``cga train --crop``): the update adds to a
voxel the mean feature of its class *in that crop*. A network run once over a whole brain box would pool over
the box instead, a field several times the crop, with other class proportions; its outputs then differ from
the windows it was validated with (``benchmarks/prediction_paths.py`` measures the Dice this costs).

- ``"window"`` (the default of ``cga predict``, ``window_update``): each voxel's prototypes are the means of
  its classes over the window of ``DEFAULT_WINDOW`` image voxels (``DEFAULT_WINDOW // rate`` at the updated
  map) centred on it, shifted to lie inside the input: in one pass, what a sliding window centred on the voxel
  gives it. An input no larger than the window on an axis is pooled whole along it, so training crops and
  windows up to that size are unchanged.
- ``"crop"`` (``tiled_update``): a grid of tiles of about the training crop's size at that map
  (``crop // rate`` voxels), pooled and written back per tile and class. Tiles are a grid of
  ``max(1, round(S / t))`` near-equal parts per axis (``tile_ids``), pooled in one call of
  ``cga_kernels.intra_class_update`` with ``T * K`` classes (class ``k`` of tile ``t`` is ``t * K + k``).
- ``"input"``: over each input (the paper's and the released code's form).

A SAM holds its field as ``sam.prototype_field``: ``None`` (input) or a ``Field``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

import cga_kernels as ck

from .choices import PROTOTYPE_FIELDS
from .whole_volume import DEFAULT_WINDOW


class Field(NamedTuple):
    """Where a SAM pools prototypes: ``kind`` ``"window"`` or ``"crop"`` (tiles), ``size`` in voxels of the
    updated feature map."""

    kind: str
    size: tuple[int, ...]


def tile_grid(size, tile) -> tuple[int, ...]:
    """Tiles per axis: ``max(1, round(s / t))`` for each spatial size ``s`` and tile size ``t``."""
    return tuple(max(1, round(s / t)) for s, t in zip(size, tile))


def tile_ids(size, tile, device=None) -> tuple[torch.Tensor, int]:
    """``(ids, T)``: the tile index ``(*size)`` (int64, row-major over the grid) of every voxel, and the
    number of tiles ``T``. Axis ``d`` of size ``s`` cut into ``n`` parts puts voxel ``i`` in part ``i * n // s``.

    >>> ids, count = tile_ids((4, 3), (2, 3))
    >>> count, ids.tolist()
    (2, [[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]])
    """
    grid = tile_grid(size, tile)
    ids = torch.zeros((), dtype=torch.long, device=device)
    for axis, (s, n) in enumerate(zip(size, grid)):
        part = torch.arange(s, device=device) * n // s
        ids = ids.unsqueeze(-1) * n + part.view(*([1] * axis), s)
    return ids, math.prod(grid)


def _tile_mask(mask: torch.Tensor, ids: torch.Tensor, count: int, num_classes: int) -> torch.Tensor:
    """A class mask over ``count * num_classes`` classes: labels ``(B, *S)`` become ``ids * K + label``;
    weights ``(B, K, *S)`` become ``(B, T * K, *S)``, each voxel's weights in its tile's ``K`` channels."""
    if mask.dtype == torch.long:
        return ids * num_classes + mask
    in_tile = torch.nn.functional.one_hot(ids, count).movedim(-1, 0).to(mask.dtype)  # (T, *S)
    return (in_tile.unsqueeze(1) * mask.unsqueeze(1)).flatten(1, 2)  # (B, T, K, *S) -> (B, T*K, *S)


def _case_prototypes(proto: torch.Tensor, counts: torch.Tensor, num_classes: int):
    """Per-tile ``(B, T*K, C)``, ``(B, T*K)`` -> the input's own ``(B, K, C)``, ``(B, K)`` (count-weighted;
    zero for a class no tile has)."""
    batch, _, channels = proto.shape
    counts = counts.view(batch, -1, num_classes)
    total = counts.sum(1)
    weighted = (proto.view(batch, -1, num_classes, channels) * counts.unsqueeze(-1)).sum(1)
    return torch.where(total.unsqueeze(-1) > 0, weighted / total.clamp_min(1e-12).unsqueeze(-1), 0.0), total


def tiled_update(update: ck.IntraClassUpdate, features: torch.Tensor, attention: torch.Tensor, tile):
    """``update(features, attention)`` with prototypes pooled per tile of ``tile`` voxels (``None``: over the
    whole input). ``features (B, C, *S)``, ``attention (B, K, *S)`` -> ``(features_out (B, C, *S),
    prototypes (B, K, C), counts (B, K))``, the prototypes and counts those of the whole input."""
    size = tuple(features.shape[2:])
    if tile is None or tile_grid(size, tile) == (1,) * len(size):
        return update(features, attention)
    ids, count = tile_ids(size, tile, features.device)
    k = update.num_classes
    mask = _tile_mask(ck.attention_to_mask(attention, size, update.mode), ids, count, k)
    classes = None if update.classes is None else [t * k + c for t in range(count) for c in update.classes]
    out, proto, counts = ck.intra_class_update(
        features, mask, num_classes=count * k, residual=update.residual, classes=classes
    )
    return (out, *_case_prototypes(proto, counts, k))


def window_sums(x: torch.Tensor, window) -> torch.Tensor:
    """``x (B, C, *S)`` summed over the window around each voxel: on an axis of size ``s``, the ``w = min(t, s)``
    voxels from ``clamp(i - w // 2, 0, s - w)`` for voxel ``i`` and window size ``t`` (differences of cumulative
    sums, axis by axis).

    >>> window_sums(torch.arange(5.0).view(1, 1, 5), (3,)).tolist()
    [[[3.0, 3.0, 6.0, 9.0, 9.0]]]
    """
    for axis, t in enumerate(window, start=2):
        s = x.shape[axis]
        w = min(t, s)
        start = (torch.arange(s, device=x.device) - w // 2).clamp(0, s - w)
        cumulative = F.pad(x.cumsum(axis), (0, 0) * (x.dim() - 1 - axis) + (1, 0))
        x = cumulative.index_select(axis, start + w) - cumulative.index_select(axis, start)
    return x


def window_update(update: ck.IntraClassUpdate, features: torch.Tensor, attention: torch.Tensor, window):
    """``update(features, attention)`` with each voxel's prototypes pooled over the window of ``window`` voxels
    around it (``window_sums``). ``features (B, C, *S)``, ``attention (B, K, *S)`` -> ``(features_out (B, C,
    *S), prototypes (B, K, C), counts (B, K))``, the prototypes and counts those of the whole input. Summed in
    float32 (or the features' wider type); an input within the window on every axis is the plain update."""
    size = tuple(features.shape[2:])
    if all(t >= s for t, s in zip(window, size)):
        return update(features, attention)
    k, batch, channels = update.num_classes, *features.shape[:2]
    mask = ck.attention_to_mask(attention, size, update.mode)
    dtype = torch.promote_types(features.dtype, torch.float32)
    weights = F.one_hot(mask, k).movedim(-1, 1).to(dtype) if mask.dtype == torch.long else mask.to(dtype)
    sums = window_sums((weights.unsqueeze(2) * features.to(dtype).unsqueeze(1)).flatten(1, 2), window)
    counts = window_sums(weights, window).unsqueeze(2)  # (B, K, 1, *S)
    proto = torch.where(counts > 0, sums.view(batch, k, channels, *size) / counts.clamp_min(1e-12), 0.0)
    if update.classes is not None:  # only these classes write back
        weights, proto = weights[:, list(update.classes)], proto[:, list(update.classes)]
    scatter = (weights.unsqueeze(2) * proto).sum(1).to(features.dtype)
    whole = ck.prototype_pool(features, mask, num_classes=k)
    return (features + scatter if update.residual else scatter, *whole)


def field_update(update: ck.IntraClassUpdate, features: torch.Tensor, attention: torch.Tensor, field: Field | None):
    """``update(features, attention)`` with the prototypes of ``field`` (``None``: the whole input)."""
    if field is None:
        return update(features, attention)
    return (window_update if field.kind == "window" else tiled_update)(update, features, attention, field.size)


def set_prototype_field(network: torch.nn.Module, field: str, crop=None) -> None:
    """Make ``network``'s SAM pool prototypes per ``field``: ``"window"`` (``DEFAULT_WINDOW`` around each voxel),
    ``"crop"`` (tiles of the training ``crop``; both in image voxels, divided by the attention rate at the updated
    map) or ``"input"``. No-op without a SAM."""
    if field not in PROTOTYPE_FIELDS:
        raise ValueError(f"prototype_field must be one of {PROTOTYPE_FIELDS}, got {field!r}")
    if field == "crop" and crop is None:
        raise ValueError("prototype_field 'crop' needs the training crop (crop=(X, Y, Z)); use 'window' or 'input'")
    sam = getattr(network, "sam", None)
    if sam is not None:
        rate = sam.attention_path.rate
        size = {"window": DEFAULT_WINDOW, "crop": crop}.get(field)
        sam.prototype_field = None if size is None else Field(field, tuple(max(1, int(c) // rate) for c in size))


def pool_prototypes_as_trained(network: torch.nn.Module, config: dict, source, field: str | None = None) -> None:
    """``set_prototype_field`` for the network of a checkpoint (``source``) with training config ``config``:
    ``field`` ``None`` is ``"window"``; ``"crop"`` without a recorded training crop of three positive sizes (as
    ``cga train`` writes it) is refused, naming ``source``."""
    field = field or "window"
    crop = config.get("crop")
    if field == "crop" and not (
        isinstance(crop, (list, tuple)) and len(crop) == 3 and all(isinstance(c, int) and c > 0 for c in crop)
    ):
        raise ValueError(
            f"checkpoint {source} records no training crop of three sizes (crop: {crop!r}), so its SAM's "
            "prototypes cannot be pooled per crop: use --prototype-field input"
        )
    set_prototype_field(network, field, crop)


def prototype_note(model) -> str:
    """The log's note on where ``model``'s SAM pools prototypes: ``"; prototypes per 64x64x64 tile"``,
    ``"; prototypes per 128x128x128 window around each voxel"`` (image voxels), ``"; prototypes per input"``, or
    ``""`` (no SAM, no update, or not a ``CGAUNet``)."""
    sam = getattr(model, "sam", None)
    if sam is None or sam.update is None:
        return ""
    if sam.prototype_field is None:
        return "; prototypes per input"
    size = "x".join(str(t * sam.attention_path.rate) for t in sam.prototype_field.size)
    return f"; prototypes per {size} {'tile' if sam.prototype_field.kind == 'crop' else 'window around each voxel'}"
