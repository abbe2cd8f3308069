"""The training loader: cases from a cache folder or a raw dataset folder, crops, workers.

``open_cases(path)`` gives a cache (``cga preprocess``'s output, memory-mapped) or the raw
folder behind the same interface: ``case_ids``, ``arrays(case_id)`` (a ``CaseArrays``: the case
cut to its brain box, normalised, with its class locations) and ``validation_case(case_id)``
(the whole normalised volume and its classes). From raw folders every sample reads and
normalises its whole case (seconds at 240x240x155); from a cache it reads only its crop.

``TrainingCrops`` is the Dataset of training samples; ``make_loader`` runs it under a
``CropBatchSampler`` with several persistent workers (pinned memory on CUDA).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .augmentation import draw_augmentation, draw_sequence_dropout, drop_sequences, jitter_intensity, no_augmentation
from .cache import CaseArrays, case_arrays, is_cache, open_cache, uncrop
from .cases import load_case, normalize
from .errors import DataError
from .layouts import find_cases
from .sampling import CropBatchSampler, crop_start, foreground_voxel, read_window

PREFETCH_FACTOR = 2  # batches each worker keeps ready


class RawCases:
    """A raw dataset folder of any layout (detected, or ``layout``) behind the interface of ``cache.Cache``
    (every read decodes the NIfTI files); ``layout`` names the folder's layout."""

    def __init__(self, root, layout=None):
        found = find_cases(root, layout=layout)
        self.folders = {case.case_id: case for case in found}
        self.layout = found[0].layout

    @property
    def case_ids(self) -> list[str]:
        return list(self.folders)

    def arrays(self, case_id: str) -> CaseArrays:
        return case_arrays(load_case(self.folders[case_id]))

    def validation_case(self, case_id: str):
        """``(image (C, X, Y, Z) float32 normalised, classes (X, Y, Z) uint8)`` of the whole volume."""
        case = load_case(self.folders[case_id])
        return normalize(case.image), case.classes


class CachedCases:
    """A cache folder (``cache.Cache``) with the interface of ``RawCases``; ``layout``: the layout it was made from."""

    def __init__(self, root, layout=None):
        self.cache = open_cache(root)
        self.layout = self.cache.layout
        if layout is not None and layout != self.layout:
            raise DataError(
                f"cache {root} was made from a {self.layout} dataset, not {layout}: drop --layout or rebuild the cache"
            )

    @property
    def case_ids(self) -> list[str]:
        return self.cache.case_ids

    def arrays(self, case_id: str) -> CaseArrays:
        return self.cache.arrays(case_id)

    def validation_case(self, case_id: str):
        arrays = self.arrays(case_id)
        classes = (
            None if arrays.classes is None else uncrop(np.asarray(arrays.classes), arrays.box, arrays.original_shape)
        )
        return uncrop(np.asarray(arrays.image, dtype=np.float32), arrays.box, arrays.original_shape), classes


def open_cases(path, *, layout=None):
    """``CachedCases`` for a cache folder, else ``RawCases`` for a raw dataset folder (``layout`` forces its layout)."""
    return CachedCases(path, layout) if is_cache(path) else RawCases(path, layout)


class TrainingCrops(Dataset):
    """Training samples of the cases ``case_ids`` of ``cases`` (``open_cases``), keyed by
    ``(case_index, foreground, seed)`` as ``CropBatchSampler`` yields them.

    Item: ``{"image": (C, *crop) float16, "labels": (*crop) uint8 class indices, "scale": (C,) float32,
    "shift": (C,) float32, "case_id": str}``: a ``crop`` window (foreground-centred when asked and the
    case has foreground), flipped with ``augment`` as the paper does, and the intensity jitter drawn for
    it (identity without ``augment``), then, with ``sequence_dropout`` P > 0, each sequence zero-filled
    with probability P, never all (``augmentation.draw_sequence_dropout``), all from the key's seed.
    ``training_batch`` makes the network's input of a batch on the training device: widened to float32
    and jittered there (one multiply-add per voxel, free on a GPU). A loader worker thus only copies
    windows; float16 and uint8 halve and eighth what crosses shared memory. A batch (``__getitems__``,
    as the DataLoader fetches it) is written straight into its batch tensors, in shared memory inside a
    loader worker: no per-sample arrays and no collate copy.
    """

    def __init__(self, cases, case_ids, crop, augment: bool = True, sequence_dropout: float = 0.0):
        self.cases, self.case_ids, self.crop, self.augment = cases, list(case_ids), tuple(crop), augment
        self.sequence_dropout = sequence_dropout

    def __len__(self) -> int:
        return len(self.case_ids)

    def _fill(self, key, image: np.ndarray, classes: np.ndarray, jitter: np.ndarray, arrays=None) -> str:
        """Write the sample ``key`` into ``image (C, *crop)`` float16, ``classes (*crop)`` and ``jitter (2, C)``
        (its intensity scale and shift), from its case's ``arrays`` (read when None); returns its case ID."""
        index, foreground, seed = key
        arrays = arrays if arrays is not None else self.cases.arrays(self.case_ids[index])
        if arrays.classes is None:
            raise DataError(f"case {arrays.case_id}: no segmentation (needed for training)")
        rng = np.random.default_rng(seed)
        center = foreground_voxel(arrays.locations, rng) if foreground else None
        start = crop_start(arrays.image.shape[1:], self.crop, rng, center)
        channels = arrays.image.shape[0]
        augmentation = draw_augmentation(rng, channels) if self.augment else no_augmentation(channels)
        keep = draw_sequence_dropout(rng, channels, self.sequence_dropout)
        read_window(arrays.image, arrays.classes, start, self.crop, augmentation.flips, out=(image, classes))
        jitter[0], jitter[1] = augmentation.scale, augmentation.shift
        drop_sequences(image, jitter, keep)
        return arrays.case_id

    def __getitems__(self, keys) -> dict:
        """The batch of ``keys``: ``{"image": (B, C, *crop) float16, "labels": (B, *crop) uint8, "scale": (B, C),
        "shift": (B, C) float32, "case_id": [str]}``, or ``{"data_error": message}`` when a case fails a data check."""
        try:
            first = self.cases.arrays(self.case_ids[keys[0][0]])  # C: its channels (the layout's sequences)
            channels = first.image.shape[0]
            image = _batch_tensor((len(keys), channels) + self.crop, torch.float16)
            labels = _batch_tensor((len(keys),) + self.crop, torch.uint8)
            jitter = torch.empty((len(keys), 2, channels), dtype=torch.float32)
            ids = [
                self._fill(key, image[i].numpy(), labels[i].numpy(), jitter[i].numpy(), first if i == 0 else None)
                for i, key in enumerate(keys)
            ]
        except DataError as err:  # handed to the main process as data: a worker's exception would carry its traceback
            return {"data_error": str(err)}
        return {"image": image, "labels": labels, "scale": jitter[:, 0], "shift": jitter[:, 1], "case_id": ids}

    def __getitem__(self, key) -> dict:
        batch = self.__getitems__([key])
        return {name: value[0] for name, value in batch.items()}


def training_batch(batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch on ``device`` as the network and the loss take it: ``(image (B, C, *crop) float32,
    intensity-jittered there (``dataset.jitter_intensity``), labels (B, *crop) int64)``. A batch whose data
    failed a check (in a loader worker) raises its ``DataError`` here, as one line naming the file."""
    if "data_error" in batch:
        raise DataError(batch["data_error"])
    image = batch["image"].to(device, non_blocking=True)
    image = jitter_intensity(image, batch["scale"].to(device), batch["shift"].to(device))
    return image, batch["labels"].to(device, non_blocking=True).long()


def _batch_tensor(shape, dtype) -> torch.Tensor:
    """An uninitialised tensor; in shared memory inside a loader worker (so sending it to the main process copies
    nothing)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def _as_batch(batch: dict) -> dict:
    """The DataLoader's collate function: ``TrainingCrops.__getitems__`` already made the batch."""
    return batch


def make_loader(
    dataset: TrainingCrops, sampler: CropBatchSampler, workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader of ``dataset`` batched by ``sampler``; with ``workers`` > 0 they persist across epochs
    (call ``sampler.set_epoch`` before each epoch). Samples carry their own seeds: worker RNGs are unused.

    The loader draws a base seed whenever it starts an epoch's iterator (a resumed run starts one
    where an uninterrupted run reuses its persistent workers); it draws it from a generator of its
    own, so torch's global RNG (dropout) is never touched and a resumed run ends as an uninterrupted one.
    """
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=_as_batch,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
        generator=torch.Generator().manual_seed(0),
    )
