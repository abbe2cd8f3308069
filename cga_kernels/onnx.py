"""ONNX translations of the forward ``cga::`` ops, for the ``torch.onnx`` dynamo exporter.

Each translation writes one low-level op with standard ONNX operators (opset 18), so the
exported model runs in any ONNX runtime without a custom-op library:

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


def _acc_type(x) -> ir.DataType:
    """Accumulation dtype of features ``x``: float32 for float16/bfloat16, else their own."""
    return ir.DataType.FLOAT if x.dtype in _HALF else x.dtype


def _ints(values) -> object:
    return op.Constant(value_ints=list(values))


def _class_weights(labels, num_classes, acc: ir.DataType):
    """One-hot ``(B, K, N)`` of ``labels (B, N)`` (int64) for ``num_classes`` (an int64 scalar tensor)."""
    classes = op.Range(op.Constant(value_int=0), num_classes, op.Constant(value_int=1))
    hit = op.Equal(op.Unsqueeze(labels, _ints([1])), op.Unsqueeze(classes, _ints([0, 2])))
    return op.Cast(hit, to=acc)


def _num_classes_of(active):
    """``K`` as an int64 scalar tensor from the ``(K,)`` active-class vector."""
    return op.Squeeze(op.Shape(active), _ints([0]))


def _pool(x, w, acc: ir.DataType):
    """``x (B, C, N)``, ``w (B, K, N)`` in ``acc`` -> ``proto (B, K, C)`` in ``acc``, ``counts (B, K)``."""
    counts = op.ReduceSum(w, _ints([2]), keepdims=0)
    sums = op.MatMul(w, op.Transpose(op.Cast(x, to=acc), perm=[0, 2, 1]))
    zero = op.CastLike(op.Constant(value_float=0.0), counts)
    present = op.Unsqueeze(op.Greater(counts, zero), _ints([2]))
    safe = op.Unsqueeze(
        op.Where(op.Greater(counts, zero), counts, op.CastLike(op.Constant(value_float=1.0), counts)), _ints([2])
    )
    proto = op.Where(present, op.Div(sums, safe), op.CastLike(zero, sums))
    return proto, counts


def _scatter(proto, w):
    """``proto (B, K, C)``, ``w (B, K, N)`` -> ``y (B, C, N) = proto^T w``."""
    return op.MatMul(op.Transpose(proto, perm=[0, 2, 1]), w)


def _update(x, w, active, residual: bool, acc: ir.DataType):
    """The fused intra-class update on class weights ``w (B, K, N)`` in ``acc``."""
    proto, counts = _pool(x, w, acc)
    written = op.Mul(w, op.Unsqueeze(op.CastLike(active, w), _ints([0, 2])))
    y = _scatter(proto, written)
    if residual:
        y = op.Add(y, op.Cast(x, to=acc))
    return op.Cast(y, to=x.dtype), op.Cast(proto, to=x.dtype), counts


def intra_update_hard(x, labels, active, residual: bool):
    """``cga::intra_update_hard(x (B, C, N), labels (B, N), active (K,), residual) -> (y, proto, counts)``."""
    acc = _acc_type(x)
    return _update(x, _class_weights(labels, _num_classes_of(active), acc), active, residual, acc)


def intra_update_soft(x, weights, active, residual: bool):
    """``cga::intra_update_soft(x (B, C, N), weights (B, K, N), active (K,), residual) -> (y, proto, counts)``."""
    acc = _acc_type(x)
    return _update(x, op.Cast(weights, to=acc), active, residual, acc)


def pool_hard(x, labels, num_classes: int):
    """``cga::pool_hard(x (B, C, N), labels (B, N), num_classes) -> (proto (B, K, C), counts (B, K))``."""
    acc = _acc_type(x)
    proto, counts = _pool(x, _class_weights(labels, op.Constant(value_int=num_classes), acc), acc)
    return op.Cast(proto, to=x.dtype), counts


def pool_soft(x, weights):
    """``cga::pool_soft(x (B, C, N), weights (B, K, N)) -> (proto (B, K, C), counts (B, K))``."""
    acc = _acc_type(x)
    proto, counts = _pool(x, op.Cast(weights, to=acc), acc)
    return op.Cast(proto, to=x.dtype), counts


def scatter_hard(proto, labels):
    """``cga::scatter_hard(proto (B, K, C), labels (B, N)) -> y (B, C, N)``; ignored voxels get 0."""
    acc = _acc_type(proto)
    num_classes = op.Gather(op.Shape(proto), op.Constant(value_int=1), axis=0)
    y = _scatter(op.Cast(proto, to=acc), _class_weights(labels, num_classes, acc))
    return op.Cast(y, to=proto.dtype)


def scatter_soft(proto, weights):
    """``cga::scatter_soft(proto (B, K, C), weights (B, K, N)) -> y (B, C, N)``."""
    acc = _acc_type(proto)
    return op.Cast(_scatter(op.Cast(proto, to=acc), op.Cast(weights, to=acc)), to=proto.dtype)


def pair_distances(proto, present):
    """``cga::pair_distances(proto (B, K, C), present (B, K)) -> d (B, K, K)``, 0 unless both classes are present."""
    acc = _acc_type(proto)
    p = op.Cast(proto, to=acc)
    diff = op.Sub(op.Unsqueeze(p, _ints([2])), op.Unsqueeze(p, _ints([1])))
    dist = op.Sqrt(op.ReduceSum(op.Mul(diff, diff), _ints([3]), keepdims=0))
    both = op.And(op.Unsqueeze(present, _ints([2])), op.Unsqueeze(present, _ints([1])))
    return op.Cast(op.Where(both, dist, op.CastLike(op.Constant(value_float=0.0), dist)), to=proto.dtype)


TRANSLATIONS = {
    "intra_update_hard": intra_update_hard,
    "intra_update_soft": intra_update_soft,
    "pool_hard": pool_hard,
    "pool_soft": pool_soft,
    "scatter_hard": scatter_hard,
    "scatter_soft": scatter_soft,
    "pair_distances": pair_distances,
}


def translation_table(namespace: str = "cga") -> dict:
    """``{torch.ops.<namespace>.<op>.default: translation}`` for every forward op, the
    ``custom_translation_table`` of ``torch.onnx.export(..., dynamo=True)``. ``namespace="cga_triton"``
    gives the same translations for a model traced through ``cga_kernels.triton_ops``."""
    import cga_kernels  # noqa: F401  (registers the ops)

    ops = getattr(torch.ops, namespace)
    return {getattr(ops, name).default: translation for name, translation in TRANSLATIONS.items()}
