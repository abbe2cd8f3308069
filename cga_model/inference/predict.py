"""Inference: segment cases (whole brain box or windows, batched flip TTA, brain mask: ``nn/sliding_window.py``),
NIfTI output."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.cases import check_headers, load_case, normalize
from ..data.errors import DataError
from ..data.file_safety import check_output, safe_case_path
from ..data.layouts import LAYOUTS, find_cases
from ..data.nifti import save_nifti
from ..evaluation.overlay import save_overlay
from ..flag_checks import window
from ..nn.checkpoint import check_model_fits, model_channel_order, trained_layout
from ..nn.sliding_window import class_indices, resolve_precision, segment_labels, segment_volume
from ..nn.whole_volume import check_path_options
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
    save_probs=False,
    brain_mask=True,
    device="cpu",
    progress=True,
    log=None,
    overwrite=False,
    allow_missing=False,
    prototype_field=None,
    **segmentation,
) -> list[Path]:
    """Predict every case under ``input_path`` (any layout: detected, or ``layout``) in the input's own convention.

    Writes ``<ID>.nii.gz``: uint8 labels of the input layout's scheme with the input's affine and header (3-D, with
    the spatial affine, for 4-D MSD input), and ``<ID>_overlay.png``. Among layouts sharing file names the
    checkpoint's training layout is preferred; a scheme that cannot express every class of the model (e.g. RC) is
    refused. Inputs are fed in the checkpoint's channel order. ``checkpoint`` may be a ``.onnx`` file of ``cga
    export``: the same windows then run in ONNX Runtime (CPU). ``brain_mask`` (default): voxels zero in every
    modality (outside a skull-stripped brain) are background and only the brain's box is segmented; turn it off for
    images that are not skull-stripped. ``segmentation``: ``roi``, ``overlap``, ``tta``, ``memory_limit``,
    ``whole_box``, ``precision`` of ``segment_volume`` (default: the path of the network's normalisation,
    ``default_whole_box``; ``precision="auto"``: ``resolve_precision``); ``log`` gets each case's path choice
    (default: stderr). ``prototype_field``: where the SAM pools prototypes (``load_predictor``; default: tiles of
    the training crop). Before anything is written, every case's headers and geometry (``cases.check_headers``) and
    ID are checked, and ``out_dir`` must pass ``check_output``: never inside the input, and files it would replace
    only with ``overwrite``. A case lacking a sequence of the network is refused naming the file; with
    ``allow_missing`` it is segmented with it zero-filled, logged (``_missing_line``) and recorded in its header
    (``missing_description``)."""
    segmentation = _checked_segmentation(segmentation)
    found = _model_and_cases(checkpoint, input_path, layout, device, segmentation["precision"], prototype_field)
    model, config, cases, channels = found
    scheme, out_dir = LAYOUTS[cases[0].layout].scheme, Path(out_dir)
    _check_before_writing(
        cases, out_dir, (input_path, checkpoint), channels, save_probs=save_probs, overwrite=overwrite,
        allow_missing=allow_missing,
    )  # fmt: skip
    segment = functools.partial(
        _segment_case, model, config, channels, device=device, brain_mask=brain_mask, save_probs=save_probs,
        log=log or _log,
    )  # fmt: skip
    written = []
    for source in tqdm(cases, desc="predict", disable=not progress):
        case = load_case(source, with_labels=True, allow_missing=allow_missing)
        written.append(_write_case(out_dir, case, segment(case, **segmentation), scheme))
    return written


def _checked_segmentation(segmentation: dict) -> dict:
    """``segmentation`` with ``precision="auto"`` unless given; a bad ``--roi``, or ``--whole-box`` with forced
    windows, refused before any case is read."""
    if segmentation.get("roi") is not None:
        window("--roi", segmentation["roi"])
    check_path_options(segmentation.get("roi"), segmentation.get("overlap"), segmentation.get("whole_box", False))
    return {"precision": "auto", **segmentation}


def _segment_case(model, config, channels, case, *, device, brain_mask, save_probs, log, **segmentation):
    """Labels (or probabilities with ``save_probs``) of one loaded ``case``; its log lines go to ``log``."""
    image = torch.from_numpy(normalize(case.image[channels])).to(device)  # a missing sequence stays 0
    segment = segment_volume if save_probs else segment_labels
    case_log = functools.partial(_case_line, log, case.case_id)
    if case.missing:
        case_log(_missing_line(case.missing, config))
    return segment(model, image, brain_only=brain_mask, log=case_log, **segmentation)


def _model_and_cases(checkpoint, input_path, layout, device, precision, prototype_field) -> tuple:
    """``(model, training config, cases, channels)``: the network of ``checkpoint`` (``precision`` checked
    against it; its prototypes per ``prototype_field``), the cases under
    ``input_path`` (its training layout preferred) checked to fit it, and its input channels as indices into
    their sequences."""
    model, config = load_predictor(checkpoint, device, prototype_field)
    resolve_precision(precision, torch.device(device), isinstance(model, torch.nn.Module))
    cases = find_cases(input_path, layout=layout, prefer=trained_layout(config))
    check_model_fits(model.num_classes, config, cases[0].layout, checkpoint)
    return model, config, cases, model_channel_order(config, checkpoint, cases[0].layout)


def _check_before_writing(
    cases, out_dir: Path, inputs, channels: list, *, save_probs: bool, overwrite: bool, allow_missing: bool
) -> None:
    """Every case's headers and geometry (``check_headers``; with ``allow_missing`` those of its sequences
    there, at least one of the network's, ``channels`` of its sequences) and ID, then ``check_output`` for the
    files ``cases`` would put in ``out_dir``; then ``out_dir`` is created (or found) writable."""
    for case in cases:
        needs = [case.modalities[c] for c in channels]
        missing = check_headers(case, allow_missing=allow_missing)
        if all(m in missing for m in needs):
            raise DataError(
                f"{case.images[0].parent}: case {case.case_id} has none of the sequences the network needs "
                f"({', '.join(needs)}); --allow-missing needs at least one: add them, or move the case out"
            )
    outputs = [path for case in cases for path in _case_outputs(out_dir, case.case_id, save_probs)]
    check_output(out_dir, inputs=inputs, overwrite=overwrite, will_write=outputs)
    _writable(out_dir)


def _missing_line(missing: tuple, config: dict) -> str:
    """The log line of a case whose sequences ``missing`` are zero-filled after normalisation (the value
    ``--sequence-dropout`` trains with), warning when ``config`` (the checkpoint's) was trained without it."""
    line = f"missing {', '.join(missing)}: zero-filled (--allow-missing)"
    if not config.get("sequence_dropout"):
        line += (
            "; the model was not trained for missing sequences (sequence_dropout 0), expect a poorer segmentation: "
            "train with --sequence-dropout"
        )
    return line


def missing_description(missing: tuple) -> bytes:
    """The output header's ``descrip`` of a case whose sequences ``missing`` were zero-filled, e.g.
    ``b"cga: missing t1ce,t2"`` (within the field's 80 bytes)."""
    return f"cga: missing {','.join(missing)}".encode("ascii", "replace")[:80]


def _log(line: str) -> None:
    tqdm.write(line, file=sys.stderr)


def _case_line(log, case_id: str, line: str) -> None:
    log(f"{case_id}: {line}")


def _case_outputs(out_dir: Path, case_id: str, save_probs: bool) -> tuple:
    """What ``_write_case`` writes for ``case_id``: ``<ID>.nii.gz``, ``<ID>_overlay.png`` (and ``<ID>_prob.nii.gz``)."""
    suffixes = (".nii.gz", "_overlay.png") + (("_prob.nii.gz",) if save_probs else ())
    return tuple(safe_case_path(out_dir, case_id, suffix) for suffix in suffixes)


def _write_case(out_dir: Path, case, result: torch.Tensor, scheme) -> Path:
    """``<ID>.nii.gz`` (labels of ``scheme``) and ``<ID>_overlay.png`` of one case from its class indices
    ``result (X, Y, Z)``, or from its probabilities ``result (K, X, Y, Z)``, then also ``<ID>_prob.nii.gz``.
    The sequences missing from ``case`` are recorded in ``<ID>.nii.gz``'s header ``descrip``. Returns its path."""
    save_probs = result.ndim == 4
    classes = (class_indices(result) if save_probs else result).cpu().numpy()
    affine = case.reference.affine
    target, overlay, *prob = _case_outputs(out_dir, case.case_id, save_probs)
    header = case.reference.header.copy()
    if case.missing:
        header["descrip"] = missing_description(case.missing)
    save_nifti(target, scheme.to_labels(classes), affine, header)
    if save_probs:
        probabilities = np.moveaxis(result.cpu().numpy(), 0, -1).astype(np.float32)
        save_nifti(prob[0], probabilities, affine)
    title = f"{case.case_id} ({case.layout})"
    save_overlay(overlay, case.display_image, classes, truth=case.classes, title=title, scheme=scheme)
    return target
