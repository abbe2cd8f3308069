"""A brain-tumour dataset folder -> nnU-Net v2's raw format (``cga nnunet-convert``).

``convert_dataset(data, out, target="regions")`` writes ``out`` (named ``DatasetXXX_Name``, as
nnU-Net finds datasets by their three-digit ID):

- ``imagesTr/<case>_0000.nii.gz``, ... (float32, one file per sequence of the layout, in this package's
  tensor order ``Layout.modalities``: FLAIR, T1ce, T1, T2 for four-sequence layouts, T1ce alone for
  MEN-RT) and ``labelsTr/<case>.nii.gz`` (uint8) for cases with a segmentation; ``imagesTs/`` for
  cases without one. Every file of a case carries the affine and header of its first sequence, so
  nnU-Net's geometry checks pass.
- ``dataset.json``: ``channel_names``, ``labels``, ``numTraining``, ``file_ending``, for
  ``target="regions"`` (nnU-Net's BraTS recipe) ``regions_class_order``, and ``cga_source``: the
  layout and, per nnU-Net label value, the source layout's label value and name (to read nnU-Net's
  predictions in the cohort's own labels).

Label values written (consecutive, as nnU-Net requires), from the class indices of the layout's
label scheme (``cga_model.data.labels``), so every cohort keeps its own regions:

- ``regions``: the scheme's regions (GLI: WT, TC, ET, + RC; PED: its own WT, TC, ET; MEN-RT: GTV),
  outer first, and where they leave two classes painted alike a region of the one class more (PED's
  CC, whose TC would paint it as NETC): ``nnunet_regions``. Each class's nnU-Net value is the
  position of the last region holding it, so ``regions_class_order`` is ``[1, 2, ...]`` and nnU-Net's
  sigmoid outputs turn back into every class (GLI: 1 edema, 2 necrotic core, 3 enhancing tumour,
  4 resection cavity; WT [1, 2, 3], TC [2, 3], ET [3], RC [4]). A scheme whose regions are single
  labels (MEN-RT) is written as plain labels, which nnU-Net trains with a softmax.
- ``labels``: the class indices themselves (softmax over the classes), named as in the scheme.

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
from ..data.labels import LabelScheme
from ..data.layouts import find_cases, get_layout

DATASET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_.-]+$")
TARGETS = ("regions", "labels")
CHANNEL_NAMES = {"flair": "FLAIR", "t1ce": "T1ce", "t1": "T1", "t2": "T2"}


def _painter(regions: list, k: int):
    """The index of the last of ``regions`` (``(name, classes)``) that holds class ``k``, None if none does."""
    return max((i for i, (_, classes) in enumerate(regions) if k in classes), default=None)


def nnunet_regions(scheme: LabelScheme) -> list:
    """``[(name, class indices), ...]`` in nnU-Net's painting order (later regions win): the scheme's regions,
    outer (more classes) first, then a one-class region for each class no region paints alone (named as
    its label group, else as its label). Every foreground class is then the one class its last region paints."""
    regions = sorted(scheme.regions.items(), key=lambda rc: -len(rc[1]))
    groups = {classes: name for name, classes in scheme.label_groups.items()}
    for k in range(1, scheme.num_classes):
        painter = _painter(regions, k)
        if painter is None or any(_painter(regions, j) == painter for j in range(1, k)):
            regions.append((groups.get((k,), scheme.names[k]), (k,)))
    return regions


def label_values(scheme: LabelScheme, target: str) -> np.ndarray:
    """Class index -> nnU-Net label value, ``(num_classes,)`` uint8: for ``regions`` the position (from 1) of the
    region that paints the class (``nnunet_regions``), for ``labels`` the class index."""
    if target != "regions":
        return np.arange(scheme.num_classes, dtype=np.uint8)
    regions = nnunet_regions(scheme)
    return np.asarray([0] + [_painter(regions, k) + 1 for k in range(1, scheme.num_classes)], dtype=np.uint8)


def _source_labels(layout, values: np.ndarray) -> dict:
    """nnU-Net label value -> ``"<source label value> <name>"`` of the layout's scheme."""
    scheme = layout.scheme
    return {str(int(values[k])): f"{scheme.values[k]} {scheme.names[k]}" for k in np.argsort(values)}


def dataset_json(layout, *, target: str, num_training: int, name: str, description: str) -> dict:
    """nnU-Net v2's ``dataset.json`` for a dataset of ``layout`` (a ``Layout``: its sequences and label scheme)."""
    scheme = layout.scheme
    values = label_values(scheme, target)
    info = {
        "name": name,
        "description": description,
        "channel_names": {str(i): CHANNEL_NAMES[m] for i, m in enumerate(layout.modalities)},
    }
    regions = nnunet_regions(scheme)
    if target == "regions" and any(len(classes) > 1 for _, classes in regions):
        labels = {r: sorted(int(values[k]) for k in classes) for r, classes in regions}
        info["labels"] = {"background": 0, **labels}
        info["regions_class_order"] = list(range(1, len(regions) + 1))
    else:
        order = np.argsort(values)
        info["labels"] = {scheme.names[k]: int(values[k]) for k in order}
    source = {"layout": layout.name, "labels": _source_labels(layout, values)}
    return {**info, "numTraining": num_training, "file_ending": ".nii.gz", "cga_source": source}


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
    layout_used = get_layout(cases[0].layout)
    values = label_values(layout_used.scheme, target)
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        num_training = sum(_write_case(load_case(case), work, values) for case in cases)
        if num_training == 0:
            raise DataError(f"--data {data}: no case has a segmentation; nnU-Net needs labelled training cases")
        info = dataset_json(
            layout_used,
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
