"""The network that ``cga predict`` and ``cga confidence`` run: a checkpoint's ``CGAUNet`` or an
exported ONNX model, opened in one place."""

from __future__ import annotations

from pathlib import Path

from ..data.layouts import MODALITIES
from ..nn.checkpoint import load_model
from ..nn.inference_fusion import for_inference
from ..nn.prototype_field import pool_prototypes_as_trained
from .onnx_runtime import OnnxSegmenter, check_shapes


def load_predictor(source, device="cpu", prototype_field=None):
    """``(model, training config)`` for prediction: an ``OnnxSegmenter`` for a ``.onnx`` file (CPU
    only; its input shape checked against the sequences it will be fed, ``check_shapes``), else the network of a
    ``cga train`` checkpoint (``load_model``) as ``for_inference`` runs it on ``device``, its SAM pooling
    prototypes per ``prototype_field`` (``pool_prototypes_as_trained``: by default tiles of its training crop).
    An ONNX graph pools over each input: it takes ``prototype_field`` ``None`` or ``"input"`` only."""
    if Path(source).suffix.lower() != ".onnx":
        model, config = load_model(source, device)
        pool_prototypes_as_trained(model, config, source, prototype_field)
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
