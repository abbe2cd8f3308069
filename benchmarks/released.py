"""A re-implementation of the released CGA U-Net code's approach, written from its description
(DESIGN.md section 3; no code copied): one Python iteration per class building that class's
mask, prototypes by broadcasting einsums over full-size temporaries with denominator
``count + 1e-5``, features rebuilt class by class, and distances by the expansion
``|p_i|^2 + |p_j|^2 - 2 p_i.p_j`` (which loses precision in float32 and has NaN gradients at 0).
"""

from __future__ import annotations

import torch


def released_intra_update(x: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """``x (B, C, *S)``, ``labels (B, *S)`` -> ``(y, proto (B, K, C))``: the residual intra update."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    lab = labels.reshape(b, -1)
    protos, y = [], flat.clone()
    for k in range(num_classes):
        mask = (lab == k).float()  # (B, N)
        weighted = torch.einsum("bcn,bn->bcn", flat, mask)  # full-size temporary
        proto = weighted.sum(-1) / (mask.sum(-1, keepdim=True) + 1e-5)  # (B, C)
        y = y + torch.einsum("bc,bn->bcn", proto, mask)  # full-size temporary
        protos.append(proto)
    return y.reshape(x.shape), torch.stack(protos, 1)


def released_soft_update(x: torch.Tensor, weights: torch.Tensor):
    """The same per-class approach with soft weights ``(B, K, *S)``."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    w = weights.reshape(b, weights.shape[1], -1)
    protos, y = [], flat.clone()
    for k in range(w.shape[1]):
        mask = w[:, k]
        proto = torch.einsum("bcn,bn->bcn", flat, mask).sum(-1) / (mask.sum(-1, keepdim=True) + 1e-5)
        y = y + torch.einsum("bc,bn->bcn", proto, mask)
        protos.append(proto)
    return y.reshape(x.shape), torch.stack(protos, 1)


def released_distance(proto: torch.Tensor) -> torch.Tensor:
    """``D = sum_b sqrt(sum_ij |p_i|^2 + |p_j|^2 - 2 p_i.p_j)`` (the expansion form)."""
    sq = (proto * proto).sum(-1)  # (B, K)
    gram = proto @ proto.transpose(1, 2)
    d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * gram
    return d2.sum(dim=(1, 2)).sqrt().sum()
