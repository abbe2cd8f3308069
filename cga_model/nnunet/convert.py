"""A brain-tumour dataset folder -> nnU-Net v2's raw format (``cga nnunet-convert``).

``convert_dataset(data, out, target="regions")`` writes ``out`` (named ``DatasetXXX_Name``, as
nnU-Net finds datasets by their three-digit ID):

- ``imagesTr/<case>_0000.nii.gz`` .. ``_0003`` (float32, channels in this package's tensor order
  ``layout.MODALITIES``: FLAIR, T1ce, T1, T2) and ``labelsTr/<case>.nii.gz`` (uint8) for cases with
  a segmentation; ``imagesTs/`` for cases without one. Every file of a case carries the affine and
  header of its first modality, so nnU-Net's geometry checks pass.
- ``dataset.json``: ``channel_names``, ``labels``, ``numTraining``, ``file_ending``, and for
  ``target="regions"`` (nnU-Net's BraTS recipe) ``regions_class_order``.

Label values written (consecutive, as nnU-Net requires), from the class indices every layout's
scheme maps to (``cga_model.data.labels``: 0 background, 1 necrotic / non-enhancing core, 2 edema,
3 enhancing tumour, 4 resection cavity where the layout has it):

- ``regions``: 1 edema, 2 necrotic core, 3 enhancing tumour, 4 resection cavity, so the challenge's
  regions (``labels.REGIONS``) are label sets, outer first: WT [1, 2, 3], TC [2, 3], ET [3] (and RC
  [4]); the network predicts the regions with sigmoids and ``regions_class_order`` [1, 2, 3(, 4)]
  turns them back into these labels.
- ``labels``: the class indices themselves (softmax over the classes).

The scheme comes from the dataset's layout, never from label values. ``out`` is built beside
itself and renamed into place; an existing ``out`` is replaced only with ``overwrite=True``, and never
when it is ``data``, lies inside it or holds it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from ..data.cases import load_case
from ..data.errors import DataError
from ..data.file_safety import check_output, safe_case_path
from ..data.labels import CLASS_NAMES
from ..data.layouts import MODALITIES, find_cases, get_layout

DATASET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_.-]+$")
TARGETS = ("regions", "labels")
CHANNEL_NAMES = {"flair": "FLAIR", "t1ce": "T1ce", "t1": "T1", "t2": "T2"}
REGION_VALUES = (0, 2, 1, 3, 4)  # class index -> label value written for region-based training
NESTED_ORDER = ("WT", "TC", "ET", "RC")  # outer regions first: with regions_class_order, later regions win


def label_values(num_classes: int, target: str) -> np.ndarray:
    """Class index -> nnU-Net label value, ``(num_classes,)`` uint8."""
    return np.asarray(REGION_VALUES[:num_classes] if target == "regions" else range(num_classes), dtype=np.uint8)


def dataset_json(scheme, *, target: str, num_training: int, name: str, description: str) -> dict:
    """nnU-Net v2's ``dataset.json`` for the label ``scheme`` of a layout (4 classes, or 5 with resection cavity)."""
    info = {
        "name": name,
        "description": description,
        "channel_names": {str(i): CHANNEL_NAMES[m] for i, m in enumerate(MODALITIES)},
    }
    if target == "regions":
        regions = {
            r: sorted(int(REGION_VALUES[k]) for k in scheme.regions[r]) for r in NESTED_ORDER if r in scheme.regions
        }
        info["labels"] = {"background": 0, **regions}
        info["regions_class_order"] = [values[0] for values in regions.values()]
    else:
        info["labels"] = {CLASS_NAMES[k]: k for k in range(scheme.num_classes)}
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


def _check_out(out: Path, data, overwrite: bool) -> None:
    """``out`` named as nnU-Net needs, beside an existing folder, never the input ``data``, inside it or holding it."""
    if not DATASET_NAME.match(out.name):
        raise ValueError(
            f"--out {out}: the folder must be named DatasetXXX_Name (three digits, e.g. Dataset501_BraTS) "
            "inside $nnUNet_raw: nnU-Net finds datasets by that name"
        )
    check_output(out, inputs=(data,), overwrite=overwrite, will_write=(out,), replaces=True)
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
    _check_out(out, data, overwrite)
    cases = find_cases(data, layout=layout)
    scheme = get_layout(cases[0].layout).scheme
    values = label_values(scheme.num_classes, target)
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        num_training = sum(_write_case(load_case(case), work, values) for case in cases)
        if num_training == 0:
            raise DataError(f"--data {data}: no case has a segmentation; nnU-Net needs labelled training cases")
        info = dataset_json(
            scheme,
            target=target,
            num_training=num_training,
            name=out.name.split("_", 1)[1],
            description=f"converted by cga nnunet-convert from {cases[0].layout} data in {Path(data).absolute()}",
        )
        (work / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
        if not any((work / "imagesTs").iterdir()):
            (work / "imagesTs").rmdir()
        _replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return info
