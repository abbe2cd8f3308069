"""Run an exported CGA U-Net (``cga export``) in ONNX Runtime behind the PyTorch model's interface.

``OnnxSegmenter(path)(image)`` returns a ``CGAOutput`` like ``CGAUNet(image)`` does, so the
whole-box and sliding-window code of ``nn/sliding_window.py`` serves both without a copy
(``predictor.load_predictor`` picks one of the two for a file).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from ..nn.checkpoint import saved_model_config
from ..nn.config import ModelConfig
from ..nn.network import CGAOutput, CGAUNet
from ..nn.whole_volume import bytes_per_voxel

LOGITS, ATTENTION = "logits", "attention"  # output names written by cga_model.inference.export
CONFIG_KEY = "cga.training_config"  # metadata entry holding the checkpoint's training config (JSON)


class OnnxSegmenter:
    """An ONNX Runtime inference session (CPU provider) on a model written by ``export_onnx``.

    ``__call__(image (B, C, D, H, W) tensor) -> CGAOutput(logits, attention or None, None, None)``:
    float32 CPU tensors. ``num_classes`` is K of the logits; ``config`` the training config stored
    at export (``{}`` if none). ``threads``: ONNX Runtime intra-op threads (0 = its default).
    ``fixed_shape``: ``(batch, (D, H, W))``, each None where the export's input size is free
    (``cga export`` leaves both free); a fixed spatial shape makes ``cga predict`` use windows of it.
    """

    def __init__(self, path, threads: int = 0):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "0"
        )  # idle threads sleep: no CPU taken from other work
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise ValueError(f"ONNX Runtime cannot load {path}: {err}") from err
        self.input_name = self.session.get_inputs()[0].name
        outputs = {o.name: o for o in self.session.get_outputs()}
        if LOGITS not in outputs:
            raise ValueError(
                f"{path} has no '{LOGITS}' output (outputs: {sorted(outputs)}); export it with `cga export`"
            )
        self.output_names = list(outputs)
        self.config = json.loads(self.session.get_modelmeta().custom_metadata_map.get(CONFIG_KEY, "{}"))
        self.num_classes = outputs[LOGITS].shape[1]
        self.path, self._per_voxel, self._network = path, None, None
        self.fixed_shape = _fixed_sizes(self.session.get_inputs()[0].shape)

    def reference_network(self) -> CGAUNet:
        """The PyTorch network of the stored training config (the default ``ModelConfig`` if none), untrained,
        in eval mode: ONNX Runtime runs the same operators on tensors of the same shapes (its memory and its
        normalisations are those of the export)."""
        if self._network is None:
            config = saved_model_config({"config": self.config}, self.path) if self.config else ModelConfig()
            self._network = CGAUNet(dataclasses.replace(config, num_classes=self.num_classes)).eval()
        return self._network

    def bytes_per_voxel(self) -> float:
        """Peak activation bytes per input voxel of one pass, measured (``nn.whole_volume.bytes_per_voxel``)
        on ``reference_network()``."""
        if self._per_voxel is None:
            network = self.reference_network()
            self._per_voxel = bytes_per_voxel(network, network.config.in_channels)
        return self._per_voxel

    def __call__(self, image: torch.Tensor) -> CGAOutput:
        feed = {self.input_name: np.ascontiguousarray(image.detach().cpu().numpy(), dtype=np.float32)}
        outputs = dict(zip(self.output_names, self.session.run(None, feed)))
        attention = outputs.get(ATTENTION)
        return CGAOutput(
            torch.from_numpy(outputs[LOGITS]), None if attention is None else torch.from_numpy(attention), None, None
        )


def check_shapes(segmenter: OnnxSegmenter, channels: int) -> None:
    """Refuse an ONNX model that cannot take the input ``cga predict`` feeds it: one image
    ``(B, channels, D, H, W)`` giving ``logits (B, K, D, H, W)`` (checked when the model is opened, before any case)."""
    path, inputs = segmenter.path, segmenter.session.get_inputs()
    logits = next(o.shape for o in segmenter.session.get_outputs() if o.name == LOGITS)
    shape = list(inputs[0].shape) if len(inputs) == 1 else None
    if shape is None or len(shape) != 5 or len(logits) != 5:
        found = ", ".join(f"{i.name} {list(i.shape)}" for i in inputs)
        raise ValueError(
            f"{path} takes {found} with logits {list(logits)}; cga predict needs one input (batch, {channels} "
            "sequences, D, H, W) and logits (batch, classes, D, H, W): export a cga model with `cga export`"
        )
    if isinstance(shape[1], int) and shape[1] != channels:
        raise ValueError(
            f"{path} takes images of {shape[1]} channels ({inputs[0].name} {shape}), but cga predict feeds "
            f"{channels} (the sequences of its training config, or the four MODALITIES without one): export the "
            "model trained on these sequences with `cga export`"
        )


def _fixed_sizes(shape) -> tuple:
    """``(batch, spatial)`` of an ONNX input shape ``[B, C, D, H, W]``: each None where the export left it
    free (a symbolic name), else the fixed size (spatial: a tuple of three ints, None if any is free)."""
    batch = shape[0] if isinstance(shape[0], int) else None
    spatial = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) else None
    return batch, spatial
