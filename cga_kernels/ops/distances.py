"""``prototype_distances`` and ``inter_class_loss``: distances between class prototypes.

Low-level ops ``cga::pair_distances`` (CPU: csrc/cpu/distances.cpp, GPU:
cga_kernels/triton/distances.py) and ``cga::pair_distances_backward``: schemas, fake kernels,
backward formula, then the public functions. Distances come from direct differences (no
``|a|^2 + |b|^2 - 2ab`` expansion, which cancels catastrophically in float32). Backward:
``grad_proto_i = sum_j (g_ij + g_ji) (p_i - p_j) / d_ij`` over pairs with ``d_ij > 0``, so
the gradient at zero distance is 0 and coincident prototypes stay finite.
"""

from __future__ import annotations

import torch

from .._contract import contract
from .._lowlevel import LowLevelOp
from .._math import inter_class_loss_with
from .._validate import check_proto_counts


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output)


def _backward(ctx, grad):
    proto, dist = ctx.saved_tensors
    return ctx.ops.pair_distances_backward(grad.contiguous(), proto, dist), None


def prototype_distances_flops(*, batch: int, classes: int, channels: int) -> int:
    """``3 B K^2 C``: subtract, square and sum over channels for each ordered pair of classes."""
    return 3 * batch * classes * classes * channels


def _onnx(proto, present):
    """``pair_distances(proto (B, K, C), present (B, K)) -> d (B, K, K)``, 0 unless both classes are present."""
    from .. import onnx as g

    op = g.op
    p = op.Cast(proto, to=g.acc_type(proto))
    diff = op.Sub(op.Unsqueeze(p, g.ints([2])), op.Unsqueeze(p, g.ints([1])))
    dist = op.Sqrt(op.ReduceSum(op.Mul(diff, diff), g.ints([3]), keepdims=0))
    both = op.And(op.Unsqueeze(present, g.ints([2])), op.Unsqueeze(present, g.ints([1])))
    return op.Cast(op.Where(both, dist, op.CastLike(op.Constant(value_float=0.0), dist)), to=proto.dtype)


LOW_LEVEL = {
    "pair_distances": LowLevelOp(
        "(Tensor proto, Tensor present) -> Tensor",
        fake=lambda proto, present: proto.new_empty(proto.shape[0], proto.shape[1], proto.shape[1]),
        aot_example=lambda t: (t.proto, t.active),
        setup_context=_setup,
        backward=_backward,
        onnx=_onnx,
        flops=lambda proto, present, **_: prototype_distances_flops(
            batch=proto[0], classes=proto[1], channels=proto[2]
        ),
    ),
    "pair_distances_backward": LowLevelOp(
        "(Tensor grad, Tensor proto, Tensor dist) -> Tensor",
        fake=lambda grad, proto, dist: torch.empty_like(proto, memory_format=torch.contiguous_format),
        aot_example=lambda t: (t.grad_kk, t.proto, t.grad_kk),
    ),
}


@contract
def prototype_distances(kernels, proto, counts):
    """Euclidean distance of every pair of present classes: ``d[b, i, j] = ||proto[b, i] - proto[b, j]||``.

    Args:
        proto: prototypes ``(B, K, C)``, floating point.
        counts: class weights ``(B, K)`` (as returned by the pooling); a class with
            ``counts == 0`` is absent from that sample and left out.

    Returns:
        ``d (B, K, K)`` in ``proto.dtype``; 0 on the diagonal and wherever either class is absent.

    {dtypes}

    Gradients: with respect to ``proto``; 0 at zero distance (coincident prototypes stay finite).

    Example::

        >>> import torch, cga_kernels as ck
        >>> proto = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
        >>> ck.prototype_distances(proto, torch.ones(1, 2))
        tensor([[[0., 5.],
                 [5., 0.]]])
    """
    check_proto_counts(proto, counts)
    return kernels.ops.pair_distances(proto.contiguous(), counts > 0)


@contract
def inter_class_loss(kernels, proto, counts, form="paper"):
    """Inter-class distance loss (paper Eq. 9-10, or the released code's form); a scalar.

    ``form="paper"``: ``D_b = sum_(i != j, both present) ||p_i - p_j||`` and the loss is
    ``mean_b log(1 / (1 + D_b))`` (minimising it pushes prototypes apart).
    ``form="official"`` (released code): prototypes rescaled by ``counts / (counts + 1e-5)``,
    ``D = sum_b sqrt(sum_(i, j) ||p_i - p_j||^2)`` over all K classes, loss
    ``10 log(100 / D + 1)`` (``+inf`` when all prototypes coincide, as there).

    Args:
        proto: prototypes ``(B, K, C)``, floating point.
        counts: class weights ``(B, K)``; absent classes (``counts == 0``) are left out of
            the paper form.
        form: ``"paper"`` (default) or ``"official"``.

    Returns:
        A scalar in the accumulation dtype (float32, or float64 for float64 input).

    Gradients: with respect to ``proto`` and, in the official form, ``counts``.

    Example::

        >>> import torch, cga_kernels as ck
        >>> proto = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
        >>> round(ck.inter_class_loss(proto, torch.ones(1, 2)).item(), 4)  # -log(1 + 5 + 5)
        -2.3979
    """
    check_proto_counts(proto, counts)
    return inter_class_loss_with(
        lambda p, present: kernels.ops.pair_distances(p.contiguous(), present), proto, counts, form
    )
