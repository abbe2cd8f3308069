"""nnU-Net's predictions -> the cohort's own label values (``cga nnunet-restore``).

nnU-Net writes its predictions in the consecutive label values of the converted dataset
(``cga nnunet-convert``), not in the cohort's: for BraTS 2023 nnU-Net's 1 is edema and 2 the
necrotic core, the cohort's 2 SNFH and 1 NETC. Read as the cohort's values, such a file gives a
plausible but wrong TC and ET. ``restore_predictions(predictions, out)`` maps every prediction
file through the ``cga_source`` table the converter wrote into ``dataset.json``
(``{"<nnU-Net value>": "<source value> <name>"}``) and writes files of the same names under
``out``, with each prediction's affine and header. ``nnUNetv2_predict`` copies that
``dataset.json``, table included, into its output folder: it is read there unless ``dataset``
names another. Every file is checked before the first one is written: a value outside the table,
or a non-integer value, is refused with the file and the value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.errors import DataError
from ..data.file_safety import check_output, safe_case_path
from ..data.nifti import load_nifti, save_nifti


def dataset_json_path(dataset) -> Path:
    """``dataset`` itself when it is a ``dataset.json`` file, else ``dataset/dataset.json``."""
    path = Path(dataset)
    return path if path.is_file() else path / "dataset.json"


def _read_json(dataset, flag: str) -> tuple[Path, dict]:
    path = dataset_json_path(dataset)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{flag} {dataset}: no dataset.json there; pass --dataset with the folder cga nnunet-convert wrote"
        ) from None
    except (OSError, ValueError) as err:
        raise DataError(f"{flag} {path}: cannot read it as JSON ({' '.join(str(err).split())[:120]})") from None
    return path, info if isinstance(info, dict) else {}


def source_table(dataset, flag: str = "--dataset") -> tuple[np.ndarray, str]:
    """``(table, file_ending)``: ``table[v]`` is the source label value of nnU-Net value ``v`` (int16; -1 where
    nnU-Net has no such value), from the ``cga_source`` of ``dataset``'s ``dataset.json`` (``flag`` names it)."""
    path, info = _read_json(dataset, flag)
    source = info.get("cga_source", {}).get("labels")
    if not isinstance(source, dict) or not source:
        raise DataError(
            f"{flag} {path}: no cga_source labels; only a dataset.json written by cga nnunet-convert (or nnU-Net's "
            "copy of it) records the cohort's label values"
        )
    try:
        pairs = {int(value): int(str(named).split()[0]) for value, named in source.items()}
    except (ValueError, IndexError):
        raise DataError(f"{flag} {path}: cga_source labels {source} are not '<value>': '<value> <name>'") from None
    if min(pairs) < 0 or max(pairs) > 255 or min(pairs.values()) < 0 or max(pairs.values()) > 255:
        raise DataError(f"{flag} {path}: cga_source labels {source} hold a value outside 0-255")
    table = np.full(max(pairs) + 1, -1, dtype=np.int16)
    table[list(pairs)] = list(pairs.values())
    return table, str(info.get("file_ending", ".nii.gz"))


def _labels_of(image, path: Path, table: np.ndarray) -> np.ndarray:
    """The integer label array of ``image``, the prediction file ``path``, every value one the table maps."""
    data = np.asanyarray(image.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            raise DataError(f"--predictions {path}: holds non-integer values; give nnU-Net's label predictions")
    values = np.unique(data).astype(np.int64)
    known = np.flatnonzero(table >= 0)
    unknown = [int(v) for v in values if v < 0 or v >= table.size or table[v] < 0]
    if unknown:
        raise DataError(
            f"--predictions {path}: value {unknown[0]} is not an nnU-Net label of this dataset (its values: "
            f"{known.tolist()}); was it predicted by a model of another dataset?"
        )
    return data.astype(np.int64, copy=False)


def restore_predictions(predictions, out, *, dataset=None, overwrite: bool = False) -> list:
    """Write every prediction file of ``predictions`` under ``out`` in the source label values (the table of
    ``dataset``, by default of ``predictions``' own ``dataset.json``); returns the paths (progress bars on a
    terminal only)."""
    table, ending = source_table(predictions, "--predictions") if dataset is None else source_table(dataset)
    files = sorted(p for p in Path(predictions).glob(f"*{ending}") if p.is_file())
    if not files:
        raise DataError(f"--predictions {predictions}: no *{ending} files (the file_ending of the dataset)")
    targets = [safe_case_path(out, p.name[: -len(ending)], ending) for p in files]
    inputs = (predictions,) if dataset is None else (predictions, dataset_json_path(dataset))
    check_output(out, inputs=inputs, overwrite=overwrite, will_write=targets)
    for path in tqdm(files, desc="check", unit="case", disable=None, leave=False):
        _labels_of(load_nifti(path), path, table)
    Path(out).mkdir(parents=True, exist_ok=True)
    mapped = table.astype(np.uint8)  # every value read is one the table maps (checked above)
    for path, target in tqdm(list(zip(files, targets)), desc="restore", unit="case", disable=None):
        image = load_nifti(path)
        save_nifti(target, mapped[_labels_of(image, path, table)], image.affine, header=image.header)
    return targets
