"""The network that ``cga predict`` and ``cga confidence`` run: a checkpoint's ``CGAUNet`` or an
exported ONNX model, opened in one place."""

from __future__ import annotations

from pathlib import Path

from ..data.layouts import MODALITIES
from ..nn.checkpoint import load_model
from ..nn.inference_fusion import for_inference
from ..nn.prototype_field import set_prototype_field
from .onnx_runtime import OnnxSegmenter, check_shapes


def load_predictor(source, device="cpu", prototype_field=None):
    """``(model, training config)`` for prediction: an ``OnnxSegmenter`` for a ``.onnx`` file (CPU
    only; its input shape checked against the sequences it will be fed, ``check_shapes``), else the network of a
    ``cga train`` checkpoint (``load_model``) as ``for_inference`` runs it on ``device``, its SAM pooling
    prototypes per ``prototype_field`` (``set_prototype_field``; by default ``"crop"``, tiles of its training crop,
    for a checkpoint that records one, as ``cga train`` writes them; else ``"input"``).
    An ONNX graph pools over each input: it takes ``prototype_field`` ``None`` or ``"input"`` only."""
    if Path(source).suffix.lower() != ".onnx":
        model, config = load_model(source, device)
        field = prototype_field or ("crop" if "crop" in config else "input")
        set_prototype_field(model, field, _training_crop(config, source) if field == "crop" else None)
        return for_inference(model, device), config
    if prototype_field not in (None, "input"):
        raise ValueError(
            f"--prototype-field {prototype_field}: the ONNX model {source} pools the SAM's prototypes over each "
            "input (its graph fixes that); use --prototype-field input, or the checkpoint it was exported from"
        )
    if str(device) != "cpu":
        raise ValueError(
            f"ONNX models run on the CPU here (ONNX Runtime's CPU provider), got device {device!r}; use --device cpu"
        )
    segmenter = OnnxSegmenter(source)
    check_shapes(segmenter, len(segmenter.config.get("channels") or MODALITIES))  # what predict feeds it
    return segmenter, segmenter.config


def _training_crop(config: dict, source) -> tuple:
    """The ``crop`` of a checkpoint's training config, refused when absent or not three positive sizes."""
    crop = config.get("crop")
    if not (isinstance(crop, (list, tuple)) and len(crop) == 3 and all(isinstance(c, int) and c > 0 for c in crop)):
        raise ValueError(
            f"checkpoint {source} records no training crop of three sizes (crop: {crop!r}), so its SAM's "
            "prototypes cannot be pooled per crop: use --prototype-field input"
        )
    return tuple(crop)
