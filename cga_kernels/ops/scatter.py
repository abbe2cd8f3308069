"""``prototype_scatter``: write each class prototype back to the voxels of that class.

Low-level ops ``cga::scatter_hard`` (a gather ``proto[b, label, :]``; CPU: csrc/cpu/scatter.cpp,
GPU: cga_kernels/triton/scatter.py) and ``cga::scatter_soft``: schemas, fake kernels, backward
formulas, then the public function. Backward, with ``g = grad_y``:
``grad_proto[b, k, :] = sum_n w[b, k, n] g[b, :, n]`` (a class sum: ``pool * counts`` for hard
labels, ``w g^T`` for soft weights); soft masks also get ``grad_w = proto g``.
"""

from __future__ import annotations

import torch

from .._contract import contract
from .._lowlevel import LowLevelOp
from .._validate import parse_mask


def _setup_hard(ctx, inputs, output):
    proto, labels = inputs
    ctx.save_for_backward(labels)
    ctx.num_classes = proto.shape[1]


def _backward_hard(ctx, grad_y):
    (labels,) = ctx.saved_tensors
    mean, counts = ctx.ops.pool_hard(grad_y.contiguous(), labels, ctx.num_classes)
    return (mean * counts.unsqueeze(-1)).to(grad_y.dtype), None


def _setup_soft(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward_soft(ctx, grad_y):
    proto, weights = ctx.saved_tensors
    grad_proto = torch.bmm(weights, grad_y.transpose(1, 2)) if ctx.needs_input_grad[0] else None
    grad_w = torch.bmm(proto, grad_y) if ctx.needs_input_grad[1] else None
    return grad_proto, grad_w


def prototype_scatter_flops(*, batch: int, classes: int, channels: int, voxels: int) -> int:
    """``2 B K C N``: the product ``proto^T (B, C, K) @ w (B, K, N)``."""
    return 2 * batch * classes * channels * voxels


def _flops(proto, mask, **_):
    """FLOPs from the shapes of ``proto (B, K, C)`` and labels ``(B, N)`` or weights ``(B, K, N)``."""
    return prototype_scatter_flops(batch=proto[0], classes=proto[1], channels=proto[2], voxels=mask[-1])


def _onnx_hard(proto, labels):
    """``scatter_hard(proto (B, K, C), labels (B, N)) -> y (B, C, N)``; ignored voxels get 0."""
    from .. import onnx as g

    acc = g.acc_type(proto)
    num_classes = g.op.Gather(g.op.Shape(proto), g.op.Constant(value_int=1), axis=0)
    y = g.scatter(g.op.Cast(proto, to=acc), g.class_weights(labels, num_classes, acc))
    return g.op.Cast(y, to=proto.dtype)


def _onnx_soft(proto, weights):
    """``scatter_soft(proto (B, K, C), weights (B, K, N)) -> y (B, C, N)``."""
    from .. import onnx as g

    acc = g.acc_type(proto)
    return g.op.Cast(g.scatter(g.op.Cast(proto, to=acc), g.op.Cast(weights, to=acc)), to=proto.dtype)


LOW_LEVEL = {
    "scatter_hard": LowLevelOp(
        "(Tensor proto, Tensor labels) -> Tensor",
        fake=lambda proto, labels: proto.new_empty(proto.shape[0], proto.shape[2], labels.shape[1]),
        aot_example=lambda t: (t.proto, t.labels),
        setup_context=_setup_hard,
        backward=_backward_hard,
        onnx=_onnx_hard,
        flops=_flops,
    ),
    "scatter_soft": LowLevelOp(
        "(Tensor proto, Tensor weights) -> Tensor",
        fake=lambda proto, weights: proto.new_empty(proto.shape[0], proto.shape[2], weights.shape[2]),
        aot_example=lambda t: (t.proto, t.weights),
        setup_context=_setup_soft,
        backward=_backward_soft,
        onnx=_onnx_soft,
        flops=_flops,
    ),
}


@contract
def prototype_scatter(kernels, proto, mask, ignore_index=None):
    """Map class prototypes back to the voxels: ``y[b, :, n] = sum_k w[b, k, n] proto[b, k, :]``.

    For a hard mask this is a gather, ``y[b, :, n] = proto[b, label[b, n], :]``; voxels with
    ``ignore_index`` get 0.

    Args:
        proto: prototypes ``(B, K, C)``, floating point; K is taken from here.
        {mask}
        {ignore_index}

    Returns:
        ``y (B, C, *S)`` in ``proto.dtype``.

    {shapes}

    {dtypes}

    Gradients: with respect to ``proto`` and to soft weights; hard labels get none.

    {errors}

    Example::

        >>> import torch, cga_kernels as ck
        >>> proto = torch.randn(2, 3, 8)
        >>> labels = torch.randint(0, 3, (2, 4, 4, 4))
        >>> ck.prototype_scatter(proto, labels).shape
        torch.Size([2, 8, 4, 4, 4])
    """
    spec = parse_mask(None, mask, ignore_index=ignore_index, proto=proto, host_checks_on_cpu=kernels.host_checks_on_cpu)
    proto = proto.contiguous()
    if spec.hard:
        y = kernels.ops.scatter_hard(proto, spec.labels)
    else:
        y = kernels.ops.scatter_soft(proto, spec.weights_as(proto.dtype))
    return y.reshape(proto.shape[0], proto.shape[2], *spec.spatial_shape)
