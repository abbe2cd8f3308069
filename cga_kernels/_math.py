"""Numerical facts with one home: the accumulation dtype, divide-by-count-or-zero, a sqrt with a
finite gradient at 0, and the inter-class loss given a distance function (shared by the
reference, the public ops and the Triton launchers)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._validate import check_choice

LOSS_FORMS = ("paper", "official")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def divide_by_counts(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``sums (B, K, C) / counts (B, K)`` per class, 0 for an empty class (``counts == 0``), never NaN."""
    present = (counts > 0).unsqueeze(-1)
    safe = torch.where(counts > 0, counts, torch.ones_like(counts)).unsqueeze(-1)
    return torch.where(present, sums / safe, torch.zeros_like(sums))


def safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt`` with value and gradient 0 at 0 (plain ``sqrt`` has an infinite gradient there)."""
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def inter_class_loss_with(distances: Callable, proto: torch.Tensor, counts: torch.Tensor, form: str) -> torch.Tensor:
    """Inter-class loss given ``distances(proto, present) -> (B, K, K)``.

    ``form="paper"`` (Eq. 9-10): ``D_b = sum_{i != j present} ||p_i - p_j||``, loss
    ``mean_b log(1 / (1 + D_b))``. ``form="official"`` (released code): prototypes rescaled to
    the denominator ``counts + 1e-5``, ``D = sum_b sqrt(sum_{i,j} ||p_i - p_j||^2)`` over all
    K classes, loss ``10 log(100 / D + 1)`` (``+inf`` when all prototypes coincide, as there).
    """
    check_choice("form", form, LOSS_FORMS)
    acc = acc_dtype(proto.dtype)
    p, c = proto.to(acc), counts.to(acc)
    if form == "paper":
        d = distances(p, c > 0).sum(dim=(1, 2))
        return -torch.log1p(d).mean()
    p = p * (c / (c + 1e-5)).unsqueeze(-1)
    every = torch.ones_like(c, dtype=torch.bool)
    per_sample = safe_sqrt(distances(p, every).pow(2).sum(dim=(1, 2)))
    return 10.0 * torch.log(100.0 / per_sample.sum() + 1.0)
