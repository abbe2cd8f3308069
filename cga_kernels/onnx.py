"""ONNX translations of the forward ``cga::`` ops, for the ``torch.onnx`` dynamo exporter.

Each forward low-level op declares its translation (``LowLevelOp.onnx`` in
``cga_kernels/ops/<op>.py``), written with the building blocks below; ``translation_table()``
gathers them from ``cga_kernels.registry``. Each writes its op with standard ONNX operators
(opset 18), so the exported model runs in any ONNX runtime without a custom-op library:

- hard labels ``(B, N)`` become class weights ``w (B, K, N) = Cast(Equal(label, k))``; a label
  outside ``[0, K)`` (the ``-1`` of an ignored voxel) belongs to no class, as in the kernels;
- ``counts = ReduceSum_n(w)``, ``proto = MatMul(w, x^T) / counts`` with ``Where(counts > 0, ., 0)``
  (an empty class has a zero prototype, never NaN);
- the scatter is ``MatMul(proto^T, w * active)`` (``active``: the ``classes=`` subset), plus
  ``x`` with the residual;
- distances come from direct differences, 0 where either class is absent.

float16/bfloat16 features are accumulated in float32 and the outputs cast back, as the kernels
do; ``counts`` are returned in the accumulation dtype. Backward ops have no translation
(export is for inference).

>>> import torch, cga_kernels.onnx as cko
>>> torch.onnx.export(model, (x,), "model.onnx", dynamo=True,
...                   custom_translation_table=cko.translation_table())  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from onnxscript import ir
from onnxscript import opset18 as op

_HALF = (ir.DataType.FLOAT16, ir.DataType.BFLOAT16)


def acc_type(x) -> ir.DataType:
    """Accumulation dtype of features ``x``: float32 for float16/bfloat16, else their own."""
    return ir.DataType.FLOAT if x.dtype in _HALF else x.dtype


def ints(values) -> object:
    """An int64 vector constant (axes, shapes)."""
    return op.Constant(value_ints=list(values))


def class_weights(labels, num_classes, acc: ir.DataType):
    """One-hot ``(B, K, N)`` of ``labels (B, N)`` (int64) for ``num_classes`` (an int64 scalar tensor)."""
    classes = op.Range(op.Constant(value_int=0), num_classes, op.Constant(value_int=1))
    hit = op.Equal(op.Unsqueeze(labels, ints([1])), op.Unsqueeze(classes, ints([0, 2])))
    return op.Cast(hit, to=acc)


def num_classes_of(active):
    """``K`` as an int64 scalar tensor from the ``(K,)`` active-class vector."""
    return op.Squeeze(op.Shape(active), ints([0]))


def pool(x, w, acc: ir.DataType):
    """``x (B, C, N)``, ``w (B, K, N)`` in ``acc`` -> ``proto (B, K, C)`` in ``acc``, ``counts (B, K)``."""
    counts = op.ReduceSum(w, ints([2]), keepdims=0)
    sums = op.MatMul(w, op.Transpose(op.Cast(x, to=acc), perm=[0, 2, 1]))
    zero = op.CastLike(op.Constant(value_float=0.0), counts)
    present = op.Unsqueeze(op.Greater(counts, zero), ints([2]))
    safe = op.Unsqueeze(
        op.Where(op.Greater(counts, zero), counts, op.CastLike(op.Constant(value_float=1.0), counts)), ints([2])
    )
    proto = op.Where(present, op.Div(sums, safe), op.CastLike(zero, sums))
    return proto, counts


def scatter(proto, w):
    """``proto (B, K, C)``, ``w (B, K, N)`` -> ``y (B, C, N) = proto^T w``."""
    return op.MatMul(op.Transpose(proto, perm=[0, 2, 1]), w)


def update(x, w, active, residual: bool, acc: ir.DataType):
    """The fused intra-class update on class weights ``w (B, K, N)`` in ``acc``."""
    proto, counts = pool(x, w, acc)
    written = op.Mul(w, op.Unsqueeze(op.CastLike(active, w), ints([0, 2])))
    y = scatter(proto, written)
    if residual:
        y = op.Add(y, op.Cast(x, to=acc))
    return op.Cast(y, to=x.dtype), op.Cast(proto, to=x.dtype), counts


def translation_table(namespace: str = "cga") -> dict:
    """``{torch.ops.<namespace>.<op>.default: translation}`` for every forward op, the
    ``custom_translation_table`` of ``torch.onnx.export(..., dynamo=True)``. ``namespace="cga_triton"``
    gives the same translations for a model traced through ``cga_kernels.triton_ops``."""
    from .registry import low_level_ops

    ops = getattr(torch.ops, namespace)
    declared = low_level_ops().items()
    return {getattr(ops, name).default: low.onnx for name, low in declared if low.onnx is not None}
