"""Inputs shared by the kernel tests (tests/test_<op>.py): features and hard or soft masks."""

import torch

SHAPES = [(5,), (5, 7), (5, 7, 3), (4, 4, 4)]
KS = [1, 2, 4, 7, 9]  # up to 8 classes the C++ row loops are vectorised, beyond a scalar loop
D = torch.float64


def make_inputs(spatial, k, soft, dtype=torch.float32, batch=2, channels=6, empty_class=True):
    """``x (batch, channels, *spatial)`` and a hard or soft mask; class k-1 absent from sample 0."""
    x = torch.randn(batch, channels, *spatial, dtype=dtype)
    if soft:
        mask = torch.rand(batch, k, *spatial, dtype=dtype if dtype != torch.float16 else torch.float32)
        if empty_class and k > 1:
            mask[0, k - 1] = 0  # class k-1 absent from sample 0
    else:
        mask = torch.randint(0, k, (batch, *spatial))
        if empty_class and k > 1:
            mask[0][mask[0] == k - 1] = 0
    return x, mask


def assert_close_all(actual, expected, **tol):
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **tol)


def hard(batch=2, spatial=(3, 4), k=3):
    """Labels with class k-1 absent from sample 0."""
    labels = torch.randint(0, k, (batch, *spatial))
    labels[0][labels[0] == k - 1] = 0  # an absent class
    return labels


def soft(batch=2, spatial=(3, 4), k=3, empty=False):
    """Soft weights; gradcheck perturbs them by +-eps, so only an `empty` class (no grad) may hold zeros."""
    w = torch.rand(batch, k, *spatial, dtype=D) + 0.1
    if empty:
        w[0, k - 1] = 0
        return w
    return w.requires_grad_(True)


def feats(batch=2, channels=4, spatial=(3, 4)):
    return torch.randn(batch, channels, *spatial, dtype=D, requires_grad=True)
