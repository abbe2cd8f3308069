"""Inference: segment cases (sliding windows, optional flip TTA, brain mask: ``nn/sliding_window.py``), NIfTI output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.cases import load_case, normalize
from ..data.errors import DataError
from ..data.file_safety import safe_case_path
from ..data.layouts import LAYOUTS, find_cases
from ..data.nifti import save_nifti
from ..evaluation.overlay import save_overlay
from ..nn.checkpoint import check_model_fits, model_channel_order, trained_layout
from ..nn.config import SIZE_MULTIPLE
from ..nn.sliding_window import segment_volume
from .predictor import load_predictor


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DataError(f"output folder is not writable: {out_dir} ({err})") from err


def predict_folder(
    checkpoint,
    input_path,
    out_dir,
    *,
    layout=None,
    roi=(128, 128, 128),
    overlap=0.5,
    tta=False,
    save_probs=False,
    brain_mask=True,
    device="cpu",
    progress=True,
) -> list[Path]:
    """Predict every case under ``input_path`` (any layout: detected, or ``layout``) in the input's own convention.

    Writes ``<ID>.nii.gz``: uint8 labels of the input layout's scheme with the input's affine and
    header (3-D, with the spatial affine, for 4-D MSD input), and ``<ID>_overlay.png``. Among layouts
    sharing file names the checkpoint's training layout is preferred; a scheme that cannot express
    every class of the model (e.g. RC) is refused. Inputs are fed in the checkpoint's channel order.
    ``checkpoint`` may be a ``.onnx`` file of ``cga export``: the same windows then run in ONNX Runtime (CPU).
    ``brain_mask`` (default): voxels zero in every modality (outside a skull-stripped brain) are
    background and only the brain's box is segmented; turn it off for images that are not skull-stripped.
    """
    model, config = load_predictor(checkpoint, device)
    cases = find_cases(input_path, layout=layout, prefer=trained_layout(config))
    check_model_fits(model.num_classes, config, cases[0].layout, checkpoint)
    channels = model_channel_order(config, checkpoint, cases[0].layout)
    scheme = LAYOUTS[cases[0].layout].scheme
    out_dir = Path(out_dir)
    _writable(out_dir)
    roi = [max(SIZE_MULTIPLE, r - r % SIZE_MULTIPLE) for r in roi]
    written = []
    for source in tqdm(cases, desc="predict", disable=not progress):
        case = load_case(source, with_labels=True)
        target = safe_case_path(out_dir, case.case_id, ".nii.gz")
        image = torch.from_numpy(normalize(case.image[channels])).to(device)
        probs = segment_volume(model, image, roi, overlap=overlap, tta=tta, brain_only=brain_mask)
        _write_case(out_dir, case, probs, scheme, save_probs)
        written.append(target)
    return written


def _write_case(out_dir: Path, case, probs: torch.Tensor, scheme, save_probs: bool) -> None:
    """``<ID>.nii.gz`` (labels of ``scheme``), ``<ID>_overlay.png`` and with ``save_probs`` ``<ID>_prob.nii.gz``
    of one case from its class probabilities ``probs (K, X, Y, Z)``."""
    classes = probs.argmax(0).cpu().numpy()
    affine = case.reference.affine
    save_nifti(
        safe_case_path(out_dir, case.case_id, ".nii.gz"),
        scheme.to_labels(classes),
        affine,
        case.reference.header.copy(),
    )
    if save_probs:
        probabilities = np.moveaxis(probs.cpu().numpy(), 0, -1).astype(np.float32)
        save_nifti(safe_case_path(out_dir, case.case_id, "_prob.nii.gz"), probabilities, affine)
    flair = case.display_image
    title = f"{case.case_id} ({case.layout})"
    save_overlay(safe_case_path(out_dir, case.case_id, "_overlay.png"), flair, classes, truth=case.classes, title=title)
