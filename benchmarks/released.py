"""A re-implementation of the released CGA U-Net code's approach, written from its description
(docs/design.md, the released code; no code copied).

- ``released_one_hot``: the released ``one_hot`` (``models/Unet_Both.py``, applied to the
  attention argmax in every forward; ``utils/Construct_affinity.one_hot`` does the same to the
  down-sampled labels in every training step): per class, ``torch.nonzero(labels == k)``, then
  a Python loop over every returned index writing one element at a time. Its cost grows with
  the number of voxels (every voxel is written once), about 10 us each on these CPUs.
- ``released_intra_update``: one Python iteration per class, prototypes by broadcasting einsums
  over full-size temporaries with denominator ``count + 1e-5``, features rebuilt class by
  class. ``one_hot=vectorised_one_hot`` gives the same op with the loop replaced by one
  ``scatter_`` (a lower bound on what the released code costs).
- ``released_distance``: distances by the expansion ``|p_i|^2 + |p_j|^2 - 2 p_i.p_j`` (which
  loses precision in float32 and has NaN gradients at 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def released_one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``labels (B, *S)`` integers -> ``(B, K, *S)`` float one-hot, one element written per
    Python iteration over the indices ``torch.nonzero`` returns (the released loop)."""
    out = torch.zeros(labels.shape[0], num_classes, *labels.shape[1:])
    for k in range(num_classes):
        for index in torch.nonzero(labels == k):  # index = (b, *s), one row per voxel of class k
            out[(index[0], k, *index[1:])] = 1
    return out


def vectorised_one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The same one-hot as ``released_one_hot`` in one ``scatter_`` (no Python loop)."""
    out = torch.zeros(labels.shape[0], num_classes, *labels.shape[1:])
    return out.scatter_(1, labels.unsqueeze(1), 1.0)


def released_intra_update(
    x: torch.Tensor, labels: torch.Tensor, num_classes: int, one_hot: Callable = released_one_hot
):
    """``x (B, C, *S)``, ``labels (B, *S)`` -> ``(y, proto (B, K, C))``: the residual intra update,
    its class masks from ``one_hot(labels, num_classes)`` (the released loop by default)."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    masks = one_hot(labels, num_classes).reshape(b, num_classes, -1)
    protos, y = [], flat.clone()
    for k in range(num_classes):
        mask = masks[:, k]  # (B, N)
        weighted = torch.einsum("bcn,bn->bcn", flat, mask)  # full-size temporary
        proto = weighted.sum(-1) / (mask.sum(-1, keepdim=True) + 1e-5)  # (B, C)
        y = y + torch.einsum("bc,bn->bcn", proto, mask)  # full-size temporary
        protos.append(proto)
    return y.reshape(x.shape), torch.stack(protos, 1)


def released_soft_update(x: torch.Tensor, weights: torch.Tensor):
    """The same per-class approach with soft weights ``(B, K, *S)`` (no one-hot involved)."""
    return released_intra_update(x, weights, weights.shape[1], one_hot=lambda w, _k: w)


def released_distance(proto: torch.Tensor) -> torch.Tensor:
    """``D = sum_b sqrt(sum_ij |p_i|^2 + |p_j|^2 - 2 p_i.p_j)`` (the expansion form)."""
    sq = (proto * proto).sum(-1)  # (B, K)
    gram = proto @ proto.transpose(1, 2)
    d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * gram
    return d2.sum(dim=(1, 2)).sqrt().sum()


def one_hot_loop_seconds_per_voxel(batch: int = 2, size: int = 16, num_classes: int = 4, repeats: int = 3) -> float:
    """Median seconds per voxel of ``released_one_hot`` on random labels ``(batch, size^3)``."""
    torch.manual_seed(0)
    labels = torch.randint(0, num_classes, (batch, size, size, size))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        released_one_hot(labels, num_classes)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / labels.numel()
