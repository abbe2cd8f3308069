"""``intra_class_update``: the fused ``x + scatter(pool(x, mask), mask)`` (paper Eq. 7-8).

Low-level ops ``cga::intra_update_hard`` / ``cga::intra_update_soft`` and their backward ops
(CPU: csrc/cpu/intra_update.cpp, GPU: cga_kernels/triton/intra_update.py): schemas, fake
kernels, the autograd formula, then the public function. Backward, with
``s`` the counts, ``g = grad_y`` and ``H_k = (grad_proto_k + active_k sum_n w[k, n] g[:, n]) / s_k``
(0 for an empty class):
``grad_x[:, n] = sum_k w[k, n] H_k (+ g[:, n] with the residual)``; soft masks only:
``grad_w[k, n] = active_k <proto_k, g[:, n]> + <x[:, n] - proto_k, H_k> + grad_counts_k``.
Each backward is itself one fused op, so it makes the same number of passes as the forward.
"""

from __future__ import annotations

import torch

from .._contract import contract
from .._lowlevel import LowLevelOp, grad_or_zeros
from .._validate import flatten_features, parse_mask
from .pool import fake_proto_counts, prototype_pool_flops
from .scatter import prototype_scatter_flops


def _fake_update(x, mask, active, residual):
    return (torch.empty_like(x, memory_format=torch.contiguous_format), *fake_proto_counts(x, active.shape[0]))


def _fake_hard_backward(grad_y, grad_proto, labels, active, counts, residual):
    return torch.empty_like(grad_y, memory_format=torch.contiguous_format)


def _fake_soft_backward(grad_y, grad_proto, grad_counts, x, weights, active, proto, counts, residual):
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(
        weights, memory_format=torch.contiguous_format
    )


def _setup_hard(ctx, inputs, output):
    _, labels, active, residual = inputs
    ctx.save_for_backward(labels, active, output[2])
    ctx.residual = residual
    ctx.set_materialize_grads(False)  # an unused output's gradient stays None: no zero tensor is made


def _backward_hard(ctx, grad_y, grad_proto, grad_counts):
    labels, active, counts = ctx.saved_tensors
    batch, n = labels.shape
    if grad_y is None and grad_proto is None:  # only counts was used: hard labels give it no gradient
        return None, None, None, None
    if grad_y is None:  # a broadcast zero: the C++ backward reads it without an x-sized buffer
        grad_y = grad_proto.new_zeros(()).expand(batch, grad_proto.shape[2], n)
    if grad_proto is None:
        grad_proto = grad_y.new_zeros(()).expand(batch, active.shape[0], grad_y.shape[1])
    # both gradients are passed with their strides (the kernels copy the small grad_proto where
    # needed): the broadcast gradient of y.sum() is read, not copied
    args = (grad_y, grad_proto, labels, active, counts, ctx.residual)
    if torch.is_grad_enabled():  # create_graph: the backward op is differentiated again
        return ctx.ops.intra_update_hard_backward(*args), None, None, None
    with torch._C._AutoDispatchBelowAutograd():  # no graph to record: straight to the kernel
        return ctx.ops.intra_update_hard_backward(*args), None, None, None


def _setup_hard_backward(ctx, inputs, output):
    _, _, labels, active, _, residual = inputs
    ctx.save_for_backward(labels, active)
    ctx.residual = residual


def _double_backward_hard(ctx, grad_grad_x):
    """The hard backward is linear in ``(grad_y, grad_proto)`` and its adjoint is the forward op:
    ``d/d grad_y = intra_update_hard(v).y``, ``d/d grad_proto = intra_update_hard(v).proto``."""
    labels, active = ctx.saved_tensors
    y, proto, _ = ctx.ops.intra_update_hard(grad_grad_x.contiguous(), labels, active, ctx.residual)
    return y, proto, None, None, None, None


def _setup_soft(ctx, inputs, output):
    x, weights, active, residual = inputs
    ctx.save_for_backward(x, weights, active, output[1], output[2])
    ctx.residual = residual


def _backward_soft(ctx, grad_y, grad_proto, grad_counts):
    x, weights, active, proto, counts = ctx.saved_tensors
    grad_x, grad_w = ctx.ops.intra_update_soft_backward(
        grad_or_zeros(grad_y, x),
        grad_or_zeros(grad_proto, proto),
        grad_or_zeros(grad_counts, counts),
        x,
        weights,
        active,
        proto,
        counts,
        ctx.residual,
    )
    return grad_x, grad_w, None, None


def intra_class_update_flops(*, batch: int, classes: int, channels: int, voxels: int, residual: bool = True) -> int:
    """``4 B K C N + B C N``: pool, scatter and (with ``residual``) the add of ``x``."""
    shape = dict(batch=batch, classes=classes, channels=channels, voxels=voxels)
    residual_adds = batch * channels * voxels if residual else 0
    return prototype_pool_flops(**shape) + prototype_scatter_flops(**shape) + residual_adds


def _flops(x, mask, active, residual, **_):
    """FLOPs from the shapes of ``x (B, C, N)`` and ``active (K,)``."""
    return intra_class_update_flops(batch=x[0], classes=active[0], channels=x[1], voxels=x[2], residual=residual)


def _onnx_hard(x, labels, active, residual: bool):
    """``intra_update_hard(x (B, C, N), labels (B, N), active (K,), residual) -> (y, proto, counts)``."""
    from .. import onnx as g

    acc = g.acc_type(x)
    return g.update(x, g.class_weights(labels, g.num_classes_of(active), acc), active, residual, acc)


def _onnx_soft(x, weights, active, residual: bool):
    """``intra_update_soft(x (B, C, N), weights (B, K, N), active (K,), residual) -> (y, proto, counts)``."""
    from .. import onnx as g

    acc = g.acc_type(x)
    return g.update(x, g.op.Cast(weights, to=acc), active, residual, acc)


LOW_LEVEL = {
    "intra_update_hard": LowLevelOp(
        "(Tensor x, Tensor labels, Tensor active, bool residual) -> (Tensor y, Tensor proto, Tensor counts)",
        fake=_fake_update,
        aot_example=lambda t: (t.x, t.labels, t.active, t.residual),
        setup_context=_setup_hard,
        backward=_backward_hard,
        onnx=_onnx_hard,
        flops=_flops,
    ),
    "intra_update_hard_backward": LowLevelOp(
        "(Tensor grad_y, Tensor grad_proto, Tensor labels, Tensor active, Tensor counts, bool residual) -> Tensor",
        fake=_fake_hard_backward,
        aot_example=lambda t: (t.x, t.proto, t.labels, t.active, t.counts, t.residual),
        setup_context=_setup_hard_backward,
        backward=_double_backward_hard,
    ),
    "intra_update_soft": LowLevelOp(
        "(Tensor x, Tensor weights, Tensor active, bool residual) -> (Tensor y, Tensor proto, Tensor counts)",
        fake=_fake_update,
        aot_example=lambda t: (t.x, t.weights, t.active, t.residual),
        setup_context=_setup_soft,
        backward=_backward_soft,
        onnx=_onnx_soft,
        flops=_flops,
    ),
    "intra_update_soft_backward": LowLevelOp(
        "(Tensor grad_y, Tensor grad_proto, Tensor grad_counts, Tensor x, Tensor weights, Tensor active, Tensor proto, "
        "Tensor counts, bool residual) -> (Tensor grad_x, Tensor grad_weights)",
        fake=_fake_soft_backward,
        aot_example=lambda t: (t.x, t.proto, t.counts, t.x, t.weights, t.active, t.proto, t.counts, t.residual),
    ),
}


@contract
def intra_class_update(kernels, x, mask, num_classes=None, residual=True, classes=None, ignore_index=None):
    """Fused intra-class update (paper Eq. 7-8): ``y = x + scatter(pool(x, mask), mask)``.

    With ``w`` the class weights of ``mask`` and ``a_k = 1`` for the classes in ``classes``:
    ``counts[b, k] = sum_n w[b, k, n]``,
    ``proto[b, k, :] = sum_n w[b, k, n] x[b, :, n] / counts[b, k]``,
    ``y[b, :, n] = x[b, :, n] (if residual) + sum_k a_k w[b, k, n] proto[b, k, :]``.
    One op, two passes over ``x``: no one-hot or ``(B, K, N)`` tensor is built for hard masks.

    Args:
        x: features ``(B, C, *S)``, floating point.
        {mask}
        {num_classes}
        residual: add ``x`` to the scattered prototypes (default True); False returns the
            scatter alone.
        classes: None (default, every class) or an int or iterable of class indices in
            ``[0, K)``: only these classes are written back (the paper's "Intra (class4)"
            ablation); voxels of other classes get ``x`` (or 0 without the residual). The
            prototypes and counts of all K classes are still returned.
        {ignore_index}

    Returns:
        ``(y, proto, counts)``: ``y (B, C, *S)`` in ``x.dtype``, prototypes ``proto (B, K, C)``
        in ``x.dtype`` and class weights ``counts (B, K)`` in the accumulation dtype.

    {rules}

    Example::

        >>> import torch, cga_kernels as ck
        >>> x = torch.randn(2, 8, 4, 4, 4)
        >>> labels = torch.randint(0, 4, (2, 4, 4, 4))
        >>> y, proto, counts = ck.intra_class_update(x, labels, num_classes=4, classes=[3])
        >>> y.shape, proto.shape, counts.shape
        (torch.Size([2, 8, 4, 4, 4]), torch.Size([2, 4, 8]), torch.Size([2, 4]))
    """
    checks = dict(num_classes=num_classes, ignore_index=ignore_index, classes=classes)
    spec = parse_mask(x, mask, **checks, host_checks_on_cpu=kernels.host_checks_on_cpu)
    if spec.hard:
        y, proto, counts = kernels.ops.intra_update_hard(flatten_features(x), spec.labels, spec.active, bool(residual))
    else:
        y, proto, counts = kernels.ops.intra_update_soft(
            flatten_features(x), spec.weights_as(x.dtype), spec.active, bool(residual)
        )
    return y.reshape(x.shape), proto, counts
