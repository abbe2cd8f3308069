"""Backward formulas of the low-level ops (DESIGN.md section 2), registered per namespace.

With ``s`` the counts, ``g`` the output gradient and ``H_k = G_k / s_k`` (0 for an empty
class), where ``G_k = grad_proto_k + active_k * sum_n w[k,n] g[:,n]``:
``grad_x[:,n] = sum_k w[k,n] H_k (+ g[:,n])`` and, for soft masks only,
``grad_w[k,n] = active_k <proto_k, g[:,n]> + <x[:,n] - proto_k, H_k> + grad_counts_k``.
Hard labels get no gradient. Each backward is itself one fused op of the same namespace.
"""

from __future__ import annotations

import torch

from ._math import divide_by_counts


def _grad(g, like):
    """Autograd may hand None (or a non-contiguous view) for an output's gradient."""
    return torch.zeros_like(like) if g is None else g.contiguous()


def register_autograd(namespace: str) -> None:
    """Register the autograd formula of every forward op in ``namespace``."""
    ops = getattr(torch.ops, namespace)

    def setup_pool_hard(ctx, inputs, output):
        _, labels, _ = inputs
        ctx.save_for_backward(labels, output[1])

    def backward_pool_hard(ctx, grad_proto, grad_counts):
        labels, counts = ctx.saved_tensors
        h = divide_by_counts(grad_proto, counts)
        return ops.scatter_hard(h.to(grad_proto.dtype).contiguous(), labels), None, None

    def setup_pool_soft(ctx, inputs, output):
        x, weights = inputs
        ctx.save_for_backward(x, weights, output[0], output[1])

    def backward_pool_soft(ctx, grad_proto, grad_counts):
        x, weights, proto, counts = ctx.saved_tensors
        none_active = torch.zeros(weights.shape[1], dtype=torch.bool, device=x.device)
        grad_x, grad_w = ops.intra_update_soft_backward(
            torch.zeros_like(x), _grad(grad_proto, proto), _grad(grad_counts, counts), x, weights, none_active, proto, counts, False
        )
        return grad_x, grad_w

    def setup_scatter_hard(ctx, inputs, output):
        proto, labels = inputs
        ctx.save_for_backward(labels)
        ctx.num_classes = proto.shape[1]

    def backward_scatter_hard(ctx, grad_y):
        (labels,) = ctx.saved_tensors
        mean, counts = ops.pool_hard(grad_y.contiguous(), labels, ctx.num_classes)
        return (mean * counts.unsqueeze(-1)).to(grad_y.dtype), None

    def setup_scatter_soft(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def backward_scatter_soft(ctx, grad_y):
        proto, weights = ctx.saved_tensors
        grad_proto = torch.bmm(weights, grad_y.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(proto, grad_y) if ctx.needs_input_grad[1] else None
        return grad_proto, grad_w

    def setup_update_hard(ctx, inputs, output):
        _, labels, active, residual = inputs
        ctx.save_for_backward(labels, active, output[2])
        ctx.residual = residual

    def backward_update_hard(ctx, grad_y, grad_proto, grad_counts):
        labels, active, counts = ctx.saved_tensors
        batch, n = labels.shape
        if grad_y is None:
            grad_y = grad_proto.new_zeros(batch, grad_proto.shape[2], n)
        if grad_proto is None:
            grad_proto = grad_y.new_zeros(batch, active.shape[0], grad_y.shape[1])
        grad_x = ops.intra_update_hard_backward(grad_y.contiguous(), grad_proto.contiguous(), labels, active, counts, ctx.residual)
        return grad_x, None, None, None

    def setup_update_soft(ctx, inputs, output):
        x, weights, active, residual = inputs
        ctx.save_for_backward(x, weights, active, output[1], output[2])
        ctx.residual = residual

    def backward_update_soft(ctx, grad_y, grad_proto, grad_counts):
        x, weights, active, proto, counts = ctx.saved_tensors
        grad_x, grad_w = ops.intra_update_soft_backward(
            _grad(grad_y, x), _grad(grad_proto, proto), _grad(grad_counts, counts), x, weights, active, proto, counts, ctx.residual
        )
        return grad_x, grad_w, None, None

    def setup_distances(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)

    def backward_distances(ctx, grad):
        proto, dist = ctx.saved_tensors
        return ops.pair_distances_backward(grad.contiguous(), proto, dist), None

    table = {
        "pool_hard": (backward_pool_hard, setup_pool_hard),
        "pool_soft": (backward_pool_soft, setup_pool_soft),
        "scatter_hard": (backward_scatter_hard, setup_scatter_hard),
        "scatter_soft": (backward_scatter_soft, setup_scatter_soft),
        "intra_update_hard": (backward_update_hard, setup_update_hard),
        "intra_update_soft": (backward_update_soft, setup_update_soft),
        "pair_distances": (backward_distances, setup_distances),
    }
    for name, (backward, setup) in table.items():
        torch.library.register_autograd(f"{namespace}::{name}", backward, setup_context=setup)
