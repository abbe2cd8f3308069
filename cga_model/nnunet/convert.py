"""A brain-tumour dataset folder -> nnU-Net v2's raw format (``cga nnunet-convert``).

``convert_dataset(data, out, target="regions")`` writes ``out`` (named ``DatasetXXX_Name``, as
nnU-Net finds datasets by their three-digit ID):

- ``imagesTr/<case>_0000.nii.gz`` .. ``_0003`` (float32, channels in this package's tensor order
  ``layout.MODALITIES``: FLAIR, T1ce, T1, T2) and ``labelsTr/<case>.nii.gz`` (uint8) for cases with
  a segmentation; ``imagesTs/`` for cases without one. Every file of a case carries the affine and
  header of its first modality, so nnU-Net's geometry checks pass.
- ``dataset.json``: ``channel_names``, ``labels``, ``numTraining``, ``file_ending``, and for
  ``target="regions"`` (nnU-Net's BraTS recipe) ``regions_class_order``.

Label values written (consecutive, as nnU-Net requires), from this package's class indices
(``cga_model.data.labels``: 0 background, 1 necrotic / non-enhancing core, 2 oedema, 3 enhancing
tumour, 4 resection cavity where the layout has it):

- ``regions``: 1 oedema, 2 necrotic core, 3 enhancing tumour, 4 resection cavity, so the challenge's
  regions are label sets: whole tumour [1, 2, 3], tumour core [2, 3], enhancing tumour [3] (and
  resection cavity [4]); the network predicts the regions with sigmoids.
- ``labels``: the class indices themselves (softmax over the classes).

The scheme comes from the dataset's layout, never from label values. ``out`` is built beside
itself and renamed into place; an existing ``out`` is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

import nibabel as nib

from ..data.nifti_io import DataError, safe_case_path
from .cases import read_cases

DATASET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_.-]+$")
TARGETS = ("regions", "labels")
CHANNEL_NAMES = {"flair": "FLAIR", "t1ce": "T1ce", "t1": "T1", "t2": "T2"}
CLASS_NAMES = ("background", "necrotic / non-enhancing tumour core", "oedema", "enhancing tumour", "resection cavity")
REGION_VALUES = (0, 2, 1, 3, 4)  # class index -> label value written for region-based training
REGIONS = {"whole tumour": (1, 2, 3), "tumour core": (2, 3), "enhancing tumour": (3,), "resection cavity": (4,)}


def label_values(num_classes: int, target: str) -> np.ndarray:
    """Class index -> nnU-Net label value, ``(num_classes,)`` uint8."""
    return np.asarray(REGION_VALUES[:num_classes] if target == "regions" else range(num_classes), dtype=np.uint8)


def dataset_json(*, modalities, num_classes: int, target: str, num_training: int, name: str, description: str) -> dict:
    """nnU-Net v2's ``dataset.json`` for ``num_classes`` classes (4, or 5 with resection cavity)."""
    info = {"name": name, "description": description,
            "channel_names": {str(i): CHANNEL_NAMES[m] for i, m in enumerate(modalities)}}
    if target == "regions":
        regions = {k: list(v) for k, v in REGIONS.items() if max(v) < num_classes}
        info["labels"] = {"background": 0, **regions}
        info["regions_class_order"] = [min(v) for v in regions.values()]
    else:
        info["labels"] = {CLASS_NAMES[k]: k for k in range(num_classes)}
    return {**info, "numTraining": num_training, "file_ending": ".nii.gz"}


def _save(path: Path, data: np.ndarray, reference) -> None:
    """Plain NIfTI write (the whole folder is renamed into place at the end, so no per-file temporaries)."""
    image = nib.Nifti1Image(data, reference.affine, header=reference.header)
    image.set_data_dtype(data.dtype)
    nib.save(image, str(path))


def _write_case(case, folder: Path, values: np.ndarray) -> bool:
    """Write one case's channels (and labels); True when it had labels (a training case)."""
    images = folder / ("imagesTr" if case.classes is not None else "imagesTs")
    for channel, image in enumerate(case.image):
        _save(safe_case_path(images, case.case_id, f"_{channel:04d}.nii.gz"), image.astype(np.float32), case.reference)
    if case.classes is None:
        return False
    _save(safe_case_path(folder / "labelsTr", case.case_id, ".nii.gz"), values[case.classes], case.reference)
    return True


def _check_out(out: Path, overwrite: bool) -> None:
    if not DATASET_NAME.match(out.name):
        raise ValueError(f"--out {out}: the folder must be named DatasetXXX_Name (three digits, e.g. Dataset501_BraTS) "
                         "inside $nnUNet_raw: nnU-Net finds datasets by that name")
    if out.exists() and not overwrite:
        raise ValueError(f"--out {out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: parent folder {out.parent} does not exist")


def _replace(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first and deleted only afterwards."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    if old.exists():
        shutil.rmtree(old)


def convert_dataset(data, out, *, target: str = "regions", layout=None, overwrite: bool = False) -> dict:
    """Convert the dataset folder ``data`` into the nnU-Net raw folder ``out``; returns the ``dataset.json`` written."""
    if target not in TARGETS:
        raise ValueError(f"--target must be one of {TARGETS}, got {target!r}")
    out = Path(out).absolute()
    _check_out(out, overwrite)
    source = read_cases(data, layout)
    values = label_values(source.num_classes, target)
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        num_training = sum(_write_case(case, work, values) for case in source.cases)
        if num_training == 0:
            raise DataError(f"--data {data}: no case has a segmentation; nnU-Net needs labelled training cases")
        info = dataset_json(modalities=source.modalities, num_classes=source.num_classes, target=target,
                            num_training=num_training, name=out.name.split("_", 1)[1],
                            description=f"converted by cga nnunet-convert from {source.layout} data in {Path(data).absolute()}")
        (work / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
        _replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return info
