"""Run an exported CGA U-Net (``cga export``) in ONNX Runtime behind the PyTorch model's interface.

``OnnxSegmenter(path)(image)`` returns a ``CGAOutput`` like ``CGAUNet(image)`` does, so the
sliding-window code of ``cga_model.inference.predict`` serves both without a copy
(``predictor.load_predictor`` picks one of the two for a file).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..nn.network import CGAOutput

LOGITS, ATTENTION = "logits", "attention"  # output names written by cga_model.inference.export
CONFIG_KEY = "cga.training_config"  # metadata entry holding the checkpoint's training config (JSON)


class OnnxSegmenter:
    """An ONNX Runtime inference session (CPU provider) on a model written by ``export_onnx``.

    ``__call__(image (B, C, D, H, W) tensor) -> CGAOutput(logits, attention or None, None, None)``:
    float32 CPU tensors. ``num_classes`` is K of the logits; ``config`` the training config stored
    at export (``{}`` if none). ``threads``: ONNX Runtime intra-op threads (0 = its default).
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
        self.num_classes = outputs[LOGITS].shape[1]
        self.config = json.loads(self.session.get_modelmeta().custom_metadata_map.get(CONFIG_KEY, "{}"))

    def __call__(self, image: torch.Tensor) -> CGAOutput:
        feed = {self.input_name: np.ascontiguousarray(image.detach().cpu().numpy(), dtype=np.float32)}
        outputs = dict(zip(self.output_names, self.session.run(None, feed)))
        attention = outputs.get(ATTENTION)
        return CGAOutput(
            torch.from_numpy(outputs[LOGITS]), None if attention is None else torch.from_numpy(attention), None, None
        )
