"""Where training crops come from: uniform or foreground-centred windows, read from (memory-mapped) arrays.

A share of every batch (``foreground_share``, default 1/3, as nnU-Net oversamples) is centred on a
voxel of a foreground class chosen at random among those present in the case (from the case's
``locations`` rows ``(class, x, y, z)``); the rest are uniform inside the case's brain box (the
arrays are already cut to it). ``CropBatchSampler`` decides, in the main process, which samples
are foreground crops and gives each sample its own seed, so a sample's crop and augmentation do
not depend on the worker that makes it, on the number of workers or on a resume.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

DEFAULT_FOREGROUND_SHARE = 1 / 3
SEED_BITS = 63


def foreground_voxel(locations: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """``(x, y, z)`` of a random row of ``locations (N, 4)`` whose class is drawn uniformly among the
    classes present (so a small class is as likely as a large one); None when there is none."""
    if len(locations) == 0:
        return None
    classes = np.unique(locations[:, 0])
    rows = np.flatnonzero(locations[:, 0] == rng.choice(classes))
    return locations[rng.choice(rows), 1:]


def crop_start(shape, crop, rng: np.random.Generator, center=None) -> tuple:
    """Start corner of a ``crop`` window in an array of spatial ``shape``.

    Uniform over the positions that keep the window inside the array (or, on an axis where the
    array is smaller than the window, over the positions that keep the array inside the window).
    With ``center`` the window is centred on that voxel, shifted as little as needed to satisfy the
    same bounds; the voxel always lies inside the window.
    """
    starts = []
    for axis, (size, width) in enumerate(zip(shape, crop)):
        low, high = min(0, size - width), max(0, size - width)
        if center is None:
            starts.append(int(rng.integers(low, high + 1)))
        else:
            starts.append(int(np.clip(int(center[axis]) - width // 2, low, high)))
    return tuple(starts)


def read_window(image: np.ndarray, classes: np.ndarray, start, crop, flips=(False, False, False), out=None):
    """``(image (C, *crop) float32, classes (*crop))``: the window at ``start`` of ``image (C, x, y, z)``
    and ``classes (x, y, z)``, zero outside the arrays, flipped along each spatial axis ``a`` with
    ``flips[a]``; written into ``out`` (two such arrays, e.g. one slot of a batch; classes may be wider
    than uint8) or new arrays. One copy; only the window's part of a memory map is read."""
    if out is None:
        out = (np.zeros((image.shape[0],) + tuple(crop), dtype=np.float32), np.zeros(tuple(crop), dtype=np.uint8))
    out_image, out_classes = out
    source, target = [], []
    for begin, width, size, flip in zip(start, crop, image.shape[1:], flips):
        lo, hi = max(begin, 0), min(begin + width, size)
        source.append(slice(lo, hi))
        target.append(slice(width - (hi - begin), width - (lo - begin)) if flip else slice(lo - begin, hi - begin))
    axes = tuple(a for a, flip in enumerate(flips) if flip)
    window = tuple(source)
    if any(t.stop - t.start < width for t, width in zip(target, crop)):  # the window leaves the arrays: zero margins
        out_image.fill(0)
        out_classes.fill(0)
    out_image[(slice(None),) + tuple(target)] = np.flip(image[(slice(None),) + window], tuple(a + 1 for a in axes))
    out_classes[tuple(target)] = np.flip(classes[window], axes)
    return out_image, out_classes


def foreground_count(batch_size: int, share: float, rng: np.random.Generator) -> int:
    """How many of a batch of ``batch_size`` samples are foreground crops: ``batch_size * share`` rounded
    down or up at random, so that the expected share is ``share`` at any batch size (also at 1 or 2)."""
    whole, fraction = divmod(batch_size * share, 1)
    return int(whole) + int(rng.random() < fraction)


class CropBatchSampler:
    """Batches of ``(case_index, foreground, seed)`` for ``TrainingCrops``: one crop per case per epoch.

    An iterable of batches, as ``DataLoader(batch_sampler=...)`` takes it (plain Python: the module
    imports no torch, so the ``cga`` flags read its default without loading torch).

    Every epoch (``set_epoch``) draws, from ``(seed, epoch)`` alone, a permutation of the cases and one
    seed per sample; the last ``foreground_count`` samples of every batch are foreground crops. Under
    DDP (``world`` > 1) the permutation is padded to a multiple of ``world`` and rank ``rank`` takes
    every ``world``-th sample, as ``DistributedSampler`` does.
    """

    def __init__(
        self,
        cases: int,
        batch_size: int,
        foreground_share: float = DEFAULT_FOREGROUND_SHARE,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        if not 0 <= foreground_share <= 1:
            raise ValueError(f"foreground share (--foreground-share) must be in [0, 1], got {foreground_share}")
        if cases < 1 or batch_size < 1:
            raise ValueError(
                f"need at least one case and a batch size >= 1, got {cases} cases and batch size {batch_size}"
            )
        self.cases, self.batch_size, self.share = cases, batch_size, foreground_share
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        total = math.ceil(self.cases / self.world) * self.world
        order = np.resize(rng.permutation(self.cases), total)
        seeds = rng.integers(0, 2**SEED_BITS, size=total)
        return order[self.rank :: self.world], seeds[self.rank :: self.world]

    def __iter__(self) -> Iterator[list]:
        order, seeds = self._samples()
        rounding = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
        for begin in range(0, len(order), self.batch_size):
            size = min(self.batch_size, len(order) - begin)
            uniform = size - foreground_count(size, self.share, rounding)
            yield [(int(order[begin + i]), i >= uniform, int(seeds[begin + i])) for i in range(size)]

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.cases / self.world) / self.batch_size)
