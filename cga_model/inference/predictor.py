"""The network that ``cga predict`` and ``cga confidence`` run: a checkpoint's ``CGAUNet`` or an
exported ONNX model, opened in one place."""

from __future__ import annotations

from pathlib import Path

from ..nn.checkpoint import load_model
from .onnx_runtime import OnnxSegmenter


def load_predictor(source, device="cpu"):
    """``(model, training config)`` for prediction: an ``OnnxSegmenter`` for a ``.onnx`` file (CPU
    only), else the network of a ``cga train`` checkpoint (``load_model``)."""
    if Path(source).suffix.lower() != ".onnx":
        return load_model(source, device)
    if str(device) != "cpu":
        raise ValueError(
            f"ONNX models run on the CPU here (ONNX Runtime's CPU provider), got device {device!r}; use --device cpu"
        )
    segmenter = OnnxSegmenter(source)
    return segmenter, segmenter.config
