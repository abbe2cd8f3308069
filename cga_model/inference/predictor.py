"""The network that ``cga predict`` and ``cga confidence`` run: a checkpoint's ``CGAUNet`` or an
exported ONNX model, opened in one place."""

from __future__ import annotations

from pathlib import Path

from ..data.layouts import MODALITIES
from ..nn.checkpoint import load_model
from ..nn.inference_fusion import for_inference
from .onnx_runtime import OnnxSegmenter, check_shapes


def load_predictor(source, device="cpu"):
    """``(model, training config)`` for prediction: an ``OnnxSegmenter`` for a ``.onnx`` file (CPU
    only; its input shape checked against the sequences it will be fed, ``check_shapes``), else the network of a
    ``cga train`` checkpoint (``load_model``) as ``for_inference`` runs it on ``device``."""
    if Path(source).suffix.lower() != ".onnx":
        model, config = load_model(source, device)
        return for_inference(model, device), config
    if str(device) != "cpu":
        raise ValueError(
            f"ONNX models run on the CPU here (ONNX Runtime's CPU provider), got device {device!r}; use --device cpu"
        )
    segmenter = OnnxSegmenter(source)
    check_shapes(segmenter, len(segmenter.config.get("channels") or MODALITIES))  # what predict feeds it
    return segmenter, segmenter.config
