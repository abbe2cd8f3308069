"""``prototype_pool``: masked average pooling of features into one prototype per class.

Low-level ops ``cga::pool_hard`` (CPU: csrc/cpu/pool.cpp, GPU: cga_kernels/triton/pool.py) and
``cga::pool_soft``: schemas, fake kernels and backward formulas, then the public function.
Backward, with ``H = grad_proto / counts`` (0 for an empty class):
``grad_x[:, n] = sum_k w[k, n] H_k`` (a scatter of H); soft masks also get
``grad_w[k, n] = <x[:, n] - proto_k, H_k> + grad_counts_k``, which is the fused update's soft
backward with no scatter path (all classes inactive, no residual).
"""

from __future__ import annotations

import torch

from .._contract import contract
from .._lowlevel import LowLevelOp, grad_or_zeros
from .._math import acc_dtype, divide_by_counts
from .._validate import flatten_features, parse_mask


def fake_proto_counts(x: torch.Tensor, num_classes: int):
    """Fake ``(proto (B, K, C) in x.dtype, counts (B, K) in the accumulation dtype)``."""
    batch, channels = x.shape[0], x.shape[1]
    return x.new_empty(batch, num_classes, channels), x.new_empty(batch, num_classes, dtype=acc_dtype(x.dtype))


def _setup_hard(ctx, inputs, output):
    _, labels, _ = inputs
    ctx.save_for_backward(labels, output[1])


def _backward_hard(ctx, grad_proto, grad_counts):
    labels, counts = ctx.saved_tensors
    h = divide_by_counts(grad_proto, counts)
    return ctx.ops.scatter_hard(h.to(grad_proto.dtype).contiguous(), labels), None, None


def _setup_soft(ctx, inputs, output):
    x, weights = inputs
    ctx.save_for_backward(x, weights, output[0], output[1])


def _backward_soft(ctx, grad_proto, grad_counts):
    x, weights, proto, counts = ctx.saved_tensors
    none_active = torch.zeros(weights.shape[1], dtype=torch.bool, device=x.device)
    return ctx.ops.intra_update_soft_backward(
        torch.zeros_like(x),
        grad_or_zeros(grad_proto, proto),
        grad_or_zeros(grad_counts, counts),
        x,
        weights,
        none_active,
        proto,
        counts,
        False,
    )


def prototype_pool_flops(*, batch: int, classes: int, channels: int, voxels: int) -> int:
    """``2 B K C N``: the product ``w (B, K, N) @ x^T (B, N, C)``."""
    return 2 * batch * classes * channels * voxels


def _onnx_hard(x, labels, num_classes: int):
    """``pool_hard(x (B, C, N), labels (B, N), num_classes) -> (proto (B, K, C), counts (B, K))``."""
    from .. import onnx as g

    acc = g.acc_type(x)
    proto, counts = g.pool(x, g.class_weights(labels, g.op.Constant(value_int=num_classes), acc), acc)
    return g.op.Cast(proto, to=x.dtype), counts


def _onnx_soft(x, weights):
    """``pool_soft(x (B, C, N), weights (B, K, N)) -> (proto (B, K, C), counts (B, K))``."""
    from .. import onnx as g

    acc = g.acc_type(x)
    proto, counts = g.pool(x, g.op.Cast(weights, to=acc), acc)
    return g.op.Cast(proto, to=x.dtype), counts


LOW_LEVEL = {
    "pool_hard": LowLevelOp(
        "(Tensor x, Tensor labels, int num_classes) -> (Tensor proto, Tensor counts)",
        fake=lambda x, labels, num_classes: fake_proto_counts(x, num_classes),
        aot_example=lambda t: (t.x, t.labels, t.k),
        setup_context=_setup_hard,
        backward=_backward_hard,
        onnx=_onnx_hard,
        flops=lambda x, labels, num_classes, **_: prototype_pool_flops(
            batch=x[0], classes=num_classes, channels=x[1], voxels=x[2]
        ),
    ),
    "pool_soft": LowLevelOp(
        "(Tensor x, Tensor weights) -> (Tensor proto, Tensor counts)",
        fake=lambda x, weights: fake_proto_counts(x, weights.shape[1]),
        aot_example=lambda t: (t.x, t.weights),
        setup_context=_setup_soft,
        backward=_backward_soft,
        onnx=_onnx_soft,
        flops=lambda x, weights, **_: prototype_pool_flops(batch=x[0], classes=weights[1], channels=x[1], voxels=x[2]),
    ),
}


@contract
def prototype_pool(kernels, x, mask, num_classes=None, ignore_index=None):
    """Masked average pooling: one prototype (mean feature vector) per class.

    ``counts[b, k] = sum_n w[b, k, n]``;
    ``proto[b, k, :] = sum_n w[b, k, n] x[b, :, n] / counts[b, k]``.

    Args:
        x: features ``(B, C, *S)``, floating point.
        {mask}
        {num_classes}
        {ignore_index}

    Returns:
        ``(proto, counts)``: prototypes ``(B, K, C)`` in ``x.dtype`` and class weights
        ``counts (B, K)`` (voxel counts for a hard mask).

    {rules}

    Example::

        >>> import torch, cga_kernels as ck
        >>> x = torch.randn(2, 8, 4, 4, 4)
        >>> labels = torch.randint(0, 3, (2, 4, 4, 4))
        >>> proto, counts = ck.prototype_pool(x, labels, num_classes=3)
        >>> proto.shape, counts.shape
        (torch.Size([2, 3, 8]), torch.Size([2, 3]))
    """
    spec = parse_mask(
        x, mask, num_classes=num_classes, ignore_index=ignore_index, host_checks_on_cpu=kernels.host_checks_on_cpu
    )
    if spec.hard:
        return kernels.ops.pool_hard(flatten_features(x), spec.labels, spec.num_classes)
    return kernels.ops.pool_soft(flatten_features(x), spec.weights_as(x.dtype))
