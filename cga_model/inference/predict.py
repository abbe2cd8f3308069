"""Inference: sliding-window prediction with Gaussian blending, optional flip TTA, NIfTI output."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.dataset import load_case, normalize, pad_to_multiple
from ..data.layouts import LAYOUTS, MODALITIES, check_model_fits, find_cases, model_channel_order, trained_layout
from ..data.nifti_io import DataError, safe_case_path, save_nifti
from ..evaluation.overlay import save_overlay
from .onnx_runtime import load_predictor
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


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DataError(f"output folder is not writable: {out_dir} ({err})") from err


def predict_folder(checkpoint, input_path, out_dir, *, layout=None, roi=(128, 128, 128), overlap=0.5, tta=False, save_probs=False,
                   device="cpu", progress=True) -> list[Path]:
    """Predict every case under ``input_path`` (any layout: detected, or ``layout``) in the input's own convention.

    Writes ``<ID>.nii.gz``: uint8 labels of the input layout's scheme with the input's affine and
    header (3-D, with the spatial affine, for 4-D MSD input), and ``<ID>_overlay.png``. Among layouts
    sharing file names the checkpoint's training layout is preferred; a scheme that cannot express
    every class of the model (e.g. RC) is refused. Inputs are fed in the checkpoint's channel order.
    ``checkpoint`` may be a ``.onnx`` file of ``cga export``: the same windows then run in ONNX Runtime (CPU).
    """
    model, config = load_predictor(checkpoint, device)
    cases = find_cases(input_path, layout=layout, prefer=trained_layout(config))
    check_model_fits(model.num_classes, config, cases[0].layout, checkpoint)
    channels = model_channel_order(config, checkpoint)
    scheme = LAYOUTS[cases[0].layout].scheme
    out_dir = Path(out_dir)
    _writable(out_dir)
    roi = [max(SIZE_MULTIPLE, r - r % SIZE_MULTIPLE) for r in roi]
    written = []
    for source in tqdm(cases, desc="predict", disable=not progress):
        case = load_case(source, with_labels=True)
        target = safe_case_path(out_dir, case.case_id, ".nii.gz")
        shape = case.image.shape[1:]
        image = torch.from_numpy(pad_to_multiple(normalize(case.image[channels]), SIZE_MULTIPLE)).to(device)
        probs = predict_probs(model, image, roi, overlap=overlap, tta=tta)[(slice(None),) + tuple(slice(0, s) for s in shape)]
        classes = probs.argmax(0).cpu().numpy()
        save_nifti(target, scheme.to_labels(classes), case.reference.affine, case.reference.header.copy())
        if save_probs:
            save_nifti(safe_case_path(out_dir, case.case_id, "_prob.nii.gz"), np.moveaxis(probs.cpu().numpy(), 0, -1).astype(np.float32), case.reference.affine)
        save_overlay(safe_case_path(out_dir, case.case_id, "_overlay.png"), case.image[MODALITIES.index("flair")], classes,
                     truth=case.classes, title=f"{case.case_id} ({case.layout})")
        written.append(target)
    return written
