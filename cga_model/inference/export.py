"""Export a CGA U-Net for deployment: ``torch.export`` programs and ONNX (any ONNX runtime).

- ``trace(model or checkpoint)``: ``torch.export.export`` of the network in eval mode, keeping the
  ``cga::`` ops, with dynamic batch and spatial sizes (multiples of 8, at least 16).
- ``export_program(model, checkpoint or program, "model.pt2")`` saves it; ``load_program(path)``
  reads it back (``cga_kernels`` provides the ops), ``load_program(path).module()(image)`` runs it.
- ``export_onnx(model, checkpoint or program, "model.onnx")``: the ``torch.onnx`` dynamo exporter
  with the ``cga::`` ops translated to standard ONNX operators (``cga_kernels.onnx``). The file is
  written only after ``onnx.checker`` (full check) passed and ONNX Runtime reproduced the
  PyTorch logits (``tolerance``, absolute) for another batch and size than the traced one.

Outputs of both, a dict by name: ``logits (B, K, D, H, W)``; with the SAM ``attention
(B, K, D/r, H/r, W/r)``; with the inter-class prototypes (``inter=True``) ``prototypes (B, K, C_r)``
and ``counts (B, K)``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.file_safety import atomic_write
from ..nn.checkpoint import load_model
from ..nn.config import SIZE_MULTIPLE
from ..nn.network import CGAOutput
from ..quiet_logs import quiet_logger
from .onnx_runtime import CONFIG_KEY, LOGITS, OnnxSegmenter

INPUT = "image"
TRACE_BATCH, TRACE_SIZE = 2, (16, 16, 16)  # a batch of 1 or a size of 8 would be fixed in the traced graph
CHECK_BATCH, CHECK_SIZE = 1, (24, 16, 32)  # ONNX Runtime is checked at another batch and size


class NamedOutputs(nn.Module):
    """``model(image)`` as a dict ``{name: tensor}`` of the ``CGAOutput`` fields in ``names``."""

    def __init__(self, model: nn.Module, names):
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, image: torch.Tensor) -> dict:
        out = self.model(image)
        return {name: getattr(out, name) for name in self.names}


@dataclass(frozen=True)
class OnnxExport:
    """What ``export_onnx`` wrote and checked: the file, its output names, and the largest absolute
    difference of the ONNX Runtime logits from PyTorch on a random input of ``checked_shape``."""

    path: Path
    outputs: tuple
    checked_shape: tuple
    max_abs_diff: float


def dynamic_shapes() -> dict:
    """Batch and spatial sizes of the ``image`` input free: spatial sizes multiples of ``SIZE_MULTIPLE``,
    at least 16 (the traced graph assumes the bottleneck is more than 1 voxel wide)."""
    dim = torch.export.Dim
    spatial = {
        axis: SIZE_MULTIPLE * dim(f"{name}_blocks", min=2)
        for axis, name in zip((2, 3, 4), ("depth", "height", "width"))
    }
    return {INPUT: {0: dim("batch", min=1), **spatial}}


def _model_and_config(model_or_checkpoint) -> tuple[nn.Module, dict]:
    """The float32 network and its training config (a checkpoint's ``config``; ``{"model": ...}`` for a module)."""
    if isinstance(model_or_checkpoint, nn.Module):
        model = model_or_checkpoint
        config = {"model": model.config.to_dict()} if hasattr(model, "config") else {}
    else:
        model, config = load_model(model_or_checkpoint, "cpu")
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise ValueError(f"export needs a float32 model, got {dtype} parameters; convert it with model.float()")
    return model, config


def _example(batch: int, channels: int, size) -> torch.Tensor:
    return torch.randn(batch, channels, *size)


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """``model.eval()`` while tracing (no dropout in the graph), its previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def trace(model_or_checkpoint) -> torch.export.ExportedProgram:
    """``torch.export.export`` of a float32 ``CGAUNet`` (or a ``cga train`` checkpoint) in eval mode.

    The graph calls the ``cga::`` ops (``intra_update_hard``/``_soft``, or ``pool_*`` without the
    update) and returns the model's non-None outputs as a dict (see the module docstring).
    """
    model, _ = _model_and_config(model_or_checkpoint)
    example = _example(TRACE_BATCH, model.in_channels, TRACE_SIZE)
    with _eval_mode(model), torch.no_grad():
        out = model(example)
        wrapper = NamedOutputs(model, [name for name in CGAOutput._fields if getattr(out, name) is not None]).eval()
        return torch.export.export(wrapper, (example,), dynamic_shapes=dynamic_shapes())


def _as_program(model_checkpoint_or_program) -> tuple[torch.export.ExportedProgram, dict]:
    """``(program, training config)``; a given program comes with an empty config."""
    if isinstance(model_checkpoint_or_program, torch.export.ExportedProgram):
        return model_checkpoint_or_program, {}
    model, config = _model_and_config(model_checkpoint_or_program)
    return trace(model), config


def _check_target(out, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass overwrite=True (cga export --overwrite) to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    return out


def export_program(model_checkpoint_or_program, out, *, overwrite: bool = False) -> Path:
    """Save ``trace(model or checkpoint)`` (or a given ExportedProgram) atomically at ``out`` (``.pt2``);
    an existing ``out`` is replaced only with ``overwrite=True``."""
    out = _check_target(out, overwrite)
    program, _ = _as_program(model_checkpoint_or_program)
    atomic_write(out, lambda tmp: torch.export.save(program, tmp))
    return out


def load_program(path) -> torch.export.ExportedProgram:
    """Read a program written by ``export_program``; run it with ``load_program(path).module()(image)``.

    ``torch.export.load`` may unpickle objects: load only files you trust (your own exports).
    """
    import cga_kernels  # noqa: F401  (registers the cga:: ops the program calls)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported program not found: {path}")
    try:
        return torch.export.load(path)
    except Exception as err:  # torch.export raises many kinds of errors for a file it cannot read
        raise ValueError(f"cannot load exported program {path}: {err}") from err


def program_ops(program: torch.export.ExportedProgram, namespace: str = "cga") -> list[str]:
    """Names of the ``<namespace>::`` ops called in ``program``'s graph, in graph order."""
    return [
        str(n.target)
        for n in program.graph.nodes
        if n.op == "call_function" and str(n.target).startswith(f"{namespace}.")
    ]


def _ort_difference(program: torch.export.ExportedProgram, path) -> tuple[tuple, float]:
    """``(shape, largest |ONNX Runtime - PyTorch| of the logits)`` on a random ``CHECK_SIZE`` input."""
    channels = program.example_inputs[0][0].shape[1]
    image = _example(CHECK_BATCH, channels, CHECK_SIZE)
    with torch.no_grad():
        expected = program.module()(image)[LOGITS]
    return tuple(image.shape), float((OnnxSegmenter(path)(image).logits - expected).abs().max())


def _checked_onnx_writer(onnx_program, program, tolerance: float, measured: dict):
    """``write(tmp)``: save ``onnx_program``, then run ``onnx.checker`` (full) and the ONNX Runtime comparison on it."""
    import onnx

    def write(tmp):
        onnx_program.save(tmp, external_data=False)
        try:
            onnx.checker.check_model(tmp, full_check=True)
        except onnx.checker.ValidationError as err:
            raise RuntimeError(f"onnx.checker refused the exported model: {err}") from err
        measured["shape"], measured["diff"] = _ort_difference(program, tmp)
        if not measured["diff"] <= tolerance:
            raise RuntimeError(
                f"ONNX Runtime logits differ from PyTorch by {measured['diff']:.3g} (> tolerance {tolerance}); "
                "nothing written"
            )

    return write


def export_onnx(model_checkpoint_or_program, out, *, overwrite: bool = False, tolerance: float = 1e-4) -> OnnxExport:
    """Export a float32 ``CGAUNet``, a ``cga train`` checkpoint or a ``trace`` result to ONNX at ``out``.

    Input ``image (B, C, D, H, W)`` float32, B >= 1 and D, H, W multiples of 8, at least 16
    (dynamic); outputs by name as in the module docstring. Hard and soft masks and
    ``intra_classes`` subsets are translated (``cga_kernels.onnx``). ``out`` is replaced only with
    ``overwrite=True`` and is written atomically after ``onnx.checker`` passed and the ONNX Runtime
    logits matched PyTorch within ``tolerance`` (absolute). The training config of a checkpoint (or
    the ``ModelConfig`` of a module) is stored in the model's metadata (``cga.training_config``, JSON)
    for ``cga predict --onnx`` (layout, channel order).
    """
    import onnx  # noqa: F401  the onnx extra, each of its packages imported before any work: a missing one
    import onnxruntime  # noqa: F401  is named at once, even when torch.onnx was loaded earlier without it
    import onnxscript  # noqa: F401

    from cga_kernels.onnx import translation_table

    out = _check_target(out, overwrite)
    program, config = _as_program(model_checkpoint_or_program)
    names = tuple(program.call_spec.out_spec.context)  # the keys of the NamedOutputs dict, in order
    # the exporter logs a warning per torchvision op it cannot register; this model uses none
    with quiet_logger(logging.getLogger("torch.onnx._internal.exporter._registration"), logging.ERROR):
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            input_names=[INPUT],
            output_names=list(names),
            custom_translation_table=translation_table(),
            verbose=False,
        )
    onnx_program.model.metadata_props[CONFIG_KEY] = json.dumps(config, default=str)
    measured: dict = {}
    atomic_write(out, _checked_onnx_writer(onnx_program, program, tolerance, measured))
    return OnnxExport(out, names, measured["shape"], measured["diff"])
