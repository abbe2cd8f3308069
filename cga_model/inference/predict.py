"""Inference: sliding-window prediction with Gaussian blending, optional flip TTA, NIfTI output."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.dataset import find_cases, load_case, normalize, pad_to_multiple
from ..data.labels import classes_to_labels
from ..data.layout import MODALITIES
from ..data.nifti_io import DataError, safe_case_path, save_nifti
from ..evaluation.overlay import save_overlay
from ..nn.checkpoint import load_model
from ..nn.config import SIZE_MULTIPLE


def gaussian_weight(roi, sigma_scale: float = 0.125) -> torch.Tensor:
    """Importance map ``(*roi)``: a Gaussian centred in the window, sigma = roi * sigma_scale."""
    axes = [torch.exp(-0.5 * ((torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / (s * sigma_scale)) ** 2) for s in roi]
    weight = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (weight / weight.max()).clamp_min(1e-3)


def _starts(size: int, window: int, step: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window, step)) + [size - window]
    return sorted(set(starts))


@torch.no_grad()
def sliding_window_probs(model, image: torch.Tensor, roi, *, overlap: float = 0.5) -> torch.Tensor:
    """Class probabilities ``(K, *S)`` of ``image (C, *S)``, windows of ``roi`` blended with Gaussian weights.

    ``S`` and ``roi`` must be multiples of ``SIZE_MULTIPLE`` (8); a volume no larger than ``roi`` is one forward pass.
    """
    spatial = image.shape[1:]
    roi = [min(r, s) for r, s in zip(roi, spatial)]
    if list(roi) == list(spatial):
        return model(image[None]).logits[0].float().softmax(0)
    weight = gaussian_weight(roi).to(image.device)
    steps = [max(1, int(r * (1 - overlap))) for r in roi]
    probs, norm = None, torch.zeros(spatial, device=image.device)
    for corner in itertools.product(*[_starts(s, r, st) for s, r, st in zip(spatial, roi, steps)]):
        window = tuple(slice(c, c + r) for c, r in zip(corner, roi))
        out = model(image[(slice(None),) + window][None]).logits[0].float().softmax(0)
        if probs is None:
            probs = torch.zeros((out.shape[0],) + tuple(spatial), device=image.device)
        probs[(slice(None),) + window] += out * weight
        norm[window] += weight
    return probs / norm


@torch.no_grad()
def predict_probs(model, image: torch.Tensor, roi, *, overlap: float = 0.5, tta: bool = False) -> torch.Tensor:
    """Sliding-window probabilities, averaged over the 8 axis-flip combinations with ``tta``."""
    flips = [()] if not tta else [f for n in range(4) for f in itertools.combinations((1, 2, 3), n)]
    total = None
    for dims in flips:
        flipped = image.flip(dims) if dims else image
        probs = sliding_window_probs(model, flipped, roi, overlap=overlap)
        probs = probs.flip(dims) if dims else probs
        total = probs if total is None else total + probs
    return total / len(flips)


def predict_folder(checkpoint, input_path, out_dir, *, roi=(128, 128, 128), overlap=0.5, tta=False, save_probs=False,
                   device="cpu", progress=True) -> list[Path]:
    """Predict every case under ``input_path``; writes ``<ID>.nii.gz`` (uint8 {0,1,2,4}) and ``<ID>_overlay.png``."""
    cases = find_cases(input_path)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DataError(f"output folder is not writable: {out_dir} ({err})") from err
    model, _ = load_model(checkpoint, device)
    roi = [max(SIZE_MULTIPLE, r - r % SIZE_MULTIPLE) for r in roi]
    written = []
    for folder in tqdm(cases, desc="predict", disable=not progress):
        case = load_case(folder, with_labels=True)
        target = safe_case_path(out_dir, case.case_id, ".nii.gz")
        shape = case.image.shape[1:]
        image = torch.from_numpy(pad_to_multiple(normalize(case.image.copy()), SIZE_MULTIPLE)).to(device)
        probs = predict_probs(model, image, roi, overlap=overlap, tta=tta)[(slice(None),) + tuple(slice(0, s) for s in shape)]
        labels = classes_to_labels(probs.argmax(0).cpu().numpy())
        header = case.reference.header.copy()
        save_nifti(target, labels, case.reference.affine, header)
        if save_probs:
            save_nifti(safe_case_path(out_dir, case.case_id, "_prob.nii.gz"), np.moveaxis(probs.cpu().numpy(), 0, -1).astype(np.float32), case.reference.affine)
        truth = classes_to_labels(case.classes) if case.classes is not None else None
        save_overlay(safe_case_path(out_dir, case.case_id, "_overlay.png"), case.image[MODALITIES.index("flair")], labels, truth=truth, title=case.case_id)
        written.append(target)
    return written
