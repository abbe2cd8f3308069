"""A network applied to a whole volume: the brain box in one pass or in Gaussian-blended windows, batched flip TTA.

Both ``cga predict`` (``inference/``) and training's validation (``training/``) segment whole
volumes this way, so it sits on the floor below them. ``plan_inference`` (``nn/whole_volume.py``)
chooses the path: 128^3 Gaussian-blended windows at overlap 0.5 (cut to the box), or the whole brain
box in one forward pass (the SAM's attention and the intra-class update then see the whole case),
each when its activations fit the memory budget, else the fewest windows that fit. The default
(``default_whole_box``) is the windows for a network with GroupNorm (``--norm gn``) or InstanceNorm,
whose statistics depend on the field of view (the whole box scored lower Dice), and the whole box
for any other (BatchNorm, the default); ``whole_box=True`` asks for the whole box with any network. Passing ``roi``
(or ``overlap``) forces windows of ``roi``: training's validation does that with the training crop, the size the
network's GroupNorm statistics and prototypes were fitted on during training.

Brain mask (``brain_only=True``, the default of ``cga predict`` and validation): BraTS images
are skull-stripped, so a voxel that is zero in every modality is outside the head and is
background; only the brain's bounding box is segmented (about a fifth of a 240x240x155 grid)
and every voxel outside the brain gets probability 1 for background.

TTA: ``tta = N`` averages the probabilities of the first ``N`` entries of ``FLIPS`` (0 and 1: no
flip; 8: every combination of X, Y and Z flips), the flipped copies batched through the network
as far as the memory budget allows.

Precision: ``"bfloat16"`` runs the network under autocast, ``"float32"`` without it, and ``"auto"`` (the
default of ``cga predict``) takes bfloat16 where the device computes it natively (a CPU with AVX512-BF16 or
AMX, a GPU with bfloat16 units) and float32 elsewhere, where emulated bfloat16 would only be slower. On
held-out hard full-size cases bfloat16 kept every region's Dice within 0.0004 of float32 (docs/inference.md).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ..data.brain import brain_box
from .choices import PRECISIONS
from .config import SIZE_MULTIPLE
from .prototype_field import prototype_note
from .whole_volume import (
    InferencePlan,
    bytes_per_voxel,
    default_budget,
    default_whole_box,
    plan_inference,
    window_corners,
)

#: Spatial axes flipped by each TTA copy, in the order ``tta = N`` takes them: none, X, Y, Z, XY, XZ, YZ, XYZ.
FLIPS = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))


def native_bfloat16(device: torch.device) -> str | None:
    """What computes bfloat16 natively on ``device`` (``"AVX512-BF16"``, ``"AMX"``, ``"CUDA"``), or None."""
    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_bf16_supported() else None
    if device.type != "cpu":
        return None
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    return "AVX512-BF16" if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)() else None


def resolve_precision(precision: str, device: torch.device, torch_model: bool = True) -> tuple:
    """``(precision, why)``: ``"auto"`` becomes ``"bfloat16"`` where ``native_bfloat16(device)``, else
    ``"float32"``; the others are kept. ``why`` is the log's words for it. A model that is not a torch module
    (ONNX Runtime's) runs its own float32 graph: ``"bfloat16"`` is refused for it."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not torch_model:
        if precision == "bfloat16":
            raise ValueError("--precision bfloat16 needs a PyTorch checkpoint: ONNX Runtime runs the float32 model")
        return "float32", "the ONNX model's own"
    if precision != "auto":
        return precision, "--precision"
    unit = native_bfloat16(device)
    return ("bfloat16", f"auto: {unit} on this device") if unit else ("float32", "auto: no bfloat16 units here")


def gaussian_weight(roi, sigma_scale: float = 0.125) -> torch.Tensor:
    """Importance map ``(*roi)``: a Gaussian centred in the window, sigma = roi * sigma_scale."""
    axes = [
        torch.exp(-0.5 * ((torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / (s * sigma_scale)) ** 2) for s in roi
    ]
    weight = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (weight / weight.max()).clamp_min(1e-3)


def flips_of(tta: int) -> tuple:
    """The flips (spatial axes of each copy) that ``tta = N`` averages over: ``FLIPS[:max(N, 1)]``."""
    if isinstance(tta, bool) or not 0 <= int(tta) <= len(FLIPS):
        raise ValueError(f"--tta must be a number of flips from 0 to {len(FLIPS)}, got {tta!r}")
    return FLIPS[: max(int(tta), 1)]


def _autocast(device: torch.device, precision: str):
    """Autocast to bfloat16, or nothing for float32 (``precision`` already resolved)."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _flipped_mean(model, window: torch.Tensor, flips, plan: InferencePlan, precision: str) -> torch.Tensor:
    """Probabilities ``(K, *r)`` of ``window (C, *r)`` averaged over ``flips``, ``plan.batch`` copies per pass."""
    total = None
    for first in range(0, len(flips), plan.batch):
        group = flips[first : first + plan.batch]
        copies = [window.flip([a + 1 for a in f]) if f else window for f in group]
        if plan.fixed_batch:
            copies += [copies[0]] * (plan.batch - len(copies))
        batch = torch.stack(copies)
        with _autocast(window.device, precision):
            logits = model(batch).logits
        probs = logits.float().softmax(1)
        for p, f in zip(probs, group):
            p = p.flip([a + 1 for a in f]) if f else p
            total = p if total is None else total.add_(p)
    return total.div_(len(flips)) if len(flips) > 1 else total


@torch.no_grad()
def run_plan(model, image: torch.Tensor, plan: InferencePlan, *, tta: int = 0, precision: str = "float32"):
    """Class probabilities ``(K, *plan.box)`` of ``image (C, *plan.box)``: one pass (``plan.whole``) or windows
    of ``plan.roi`` blended with Gaussian weights; each averaged over the flips of ``tta``; ``precision``
    ``"float32"`` or ``"bfloat16"`` (``resolve_precision`` turns ``"auto"`` into one of them)."""
    flips = flips_of(tta)
    if plan.whole:
        return _flipped_mean(model, image, flips, plan, precision)
    weight = gaussian_weight(plan.roi).to(image.device)
    probs, norm = None, torch.zeros(plan.box, device=image.device)
    for corner in window_corners(plan.box, plan.roi, plan.overlap):
        window = tuple(slice(c, c + r) for c, r in zip(corner, plan.roi))
        out = _flipped_mean(model, image[(slice(None),) + window], flips, plan, precision)
        if probs is None:
            probs = torch.zeros((out.shape[0],) + tuple(plan.box), device=image.device)
        probs[(slice(None),) + window] += out.mul_(weight)
        norm[window] += weight
    return probs.div_(norm)


def make_plan(model, image: torch.Tensor, *, roi=None, overlap=None, tta: int = 0, memory_limit=None, whole_box=None):
    """``plan_inference`` for ``image (C, *S)`` (``S`` padded to multiples of ``SIZE_MULTIPLE``) and ``model``
    (a ``CGAUNet`` measured by ``bytes_per_voxel``, or a model with its own ``bytes_per_voxel()`` and
    ``fixed_shape``, e.g. ``OnnxSegmenter``); ``memory_limit`` bytes (None: ``default_budget``); ``whole_box``
    None: ``default_whole_box(model)``, True/False: the whole box / the default windows."""
    spatial = tuple(image.shape[1:])
    box = tuple(s + (-s) % SIZE_MULTIPLE for s in spatial)
    measure = getattr(model, "bytes_per_voxel", None)
    per_voxel = measure() if callable(measure) else bytes_per_voxel(model, image.shape[0], image.device)
    budget = default_budget(image.device) if memory_limit is None else memory_limit
    fixed = getattr(model, "fixed_shape", (None, None))
    flips = len(flips_of(tta))
    reason = None
    if whole_box is None and roi is None and overlap is None:
        whole_box, reason = default_whole_box(model)
    return plan_inference(
        box,
        per_voxel,
        budget,
        flips=flips,
        roi=roi,
        overlap=overlap,
        fixed=fixed,
        whole_box=bool(whole_box),
        reason=reason,
    )


@torch.no_grad()
def predict_probs(model, image: torch.Tensor, roi=None, *, overlap=None, tta: int = 0, **options) -> torch.Tensor:
    """Class probabilities ``(K, *S)`` of ``image (C, *S)`` (any size: zero-padded at the end to the plan's box
    and cut back). ``roi``/``overlap``: force windows (``plan_inference``); ``options``: ``memory_limit``
    (bytes), ``whole_box`` (True: the whole box in one pass when it fits; False: the default windows; None, the
    default: ``default_whole_box``),
    ``precision`` (``PRECISIONS``), ``log`` (a callable given the plan's one-line description)."""
    plan = make_plan(
        model, image, roi=roi, overlap=overlap, tta=tta,
        memory_limit=options.get("memory_limit"), whole_box=options.get("whole_box"),
    )  # fmt: skip
    precision, why = resolve_precision(
        options.get("precision", "float32"), image.device, isinstance(model, torch.nn.Module)
    )
    if options.get("log") is not None:
        options["log"](f"{plan.describe()}; {precision} ({why}){prototype_note(model)}")
    spatial = image.shape[1:]
    pads = [b - s for b, s in zip(plan.box, spatial)]
    padded = F.pad(image, [p for pad in reversed(pads) for p in (0, pad)]) if any(pads) else image
    probs = run_plan(model, padded, plan, tta=tta, precision=precision)
    return probs[(slice(None),) + tuple(slice(0, s) for s in spatial)]


def _brain_and_box(image: torch.Tensor, brain_only: bool):
    """The brain mask ``(X, Y, Z)`` (None without ``brain_only``) and the slices of the box to segment."""
    if not brain_only:
        return None, tuple(slice(0, s) for s in image.shape[1:])
    brain = (image != 0).any(dim=0)
    return brain, tuple(slice(a, b) for a, b in brain_box(brain.cpu().numpy()))


@torch.no_grad()
def segment_volume(model, image: torch.Tensor, roi=None, *, brain_only: bool = True, **options) -> torch.Tensor:
    """Class probabilities ``(K, X, Y, Z)`` of a normalised ``image (C, X, Y, Z)`` (any size: padded as needed).

    ``brain_only``: only the bounding box of the brain (voxels non-zero in any channel) is run through
    the network, and every voxel outside the brain is background with probability 1 (so ``argmax``
    never puts tumour outside the head). Without it the whole volume is segmented as it is.
    ``roi`` and ``options`` (``overlap``, ``tta``, ``memory_limit``, ``precision``, ``log``): ``predict_probs``.
    """
    brain, box = _brain_and_box(image, brain_only)
    inside = predict_probs(model, image[(slice(None),) + box], roi, **options)
    if brain is None:
        return inside
    probs = torch.zeros((inside.shape[0],) + tuple(image.shape[1:]), device=image.device)
    probs[0] = 1.0
    probs[(slice(None),) + box] = inside
    probs[:, ~brain] = 0.0
    probs[0][~brain] = 1.0
    return probs


def class_indices(probs: torch.Tensor) -> torch.Tensor:
    """``probs.argmax(0)`` as uint8 ``(*S)`` for ``probs (K, *S)``, K <= 256 (the first class wins a tie), in K - 1
    element-wise passes: ``torch.argmax`` over a short leading dimension is a slow strided reduction on the CPU
    (0.34-0.75 s against 0.04 s for 4 x 144x184x144 on 2 cores)."""
    best = probs[0].clone()
    labels = torch.zeros(probs.shape[1:], dtype=torch.uint8, device=probs.device)
    for k in range(1, probs.shape[0]):
        labels.masked_fill_(probs[k] > best, k)
        torch.maximum(best, probs[k], out=best)
    return labels


@torch.no_grad()
def segment_labels(model, image: torch.Tensor, roi=None, *, brain_only: bool = True, **options) -> torch.Tensor:
    """Class indices ``(X, Y, Z)`` uint8 of ``segment_volume(...).argmax(0)``, without the full-volume
    probabilities: only the brain box's are made, and voxels outside the brain are background (0)."""
    brain, box = _brain_and_box(image, brain_only)
    labels = torch.zeros(tuple(image.shape[1:]), dtype=torch.uint8, device=image.device)
    labels[box] = class_indices(predict_probs(model, image[(slice(None),) + box], roi, **options))
    if brain is not None:
        labels[~brain] = 0
    return labels
