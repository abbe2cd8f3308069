"""Bad input gets a clear error naming the argument and what was expected."""

import pytest
import torch

import cga_kernels as ck

X = torch.randn(2, 3, 4, 5)
LABELS = torch.randint(0, 3, (2, 4, 5))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: ck.prototype_pool(torch.randn(2, 3), LABELS, 3), ValueError, r"x must have shape \(B, C, \*spatial\)"),
        (lambda: ck.prototype_pool(X.long(), LABELS, 3), TypeError, "x must be a floating-point tensor"),
        (lambda: ck.prototype_pool(X.numpy(), LABELS, 3), TypeError, "x must be a torch.Tensor"),
        (lambda: ck.prototype_pool(X, LABELS[:1], 3), ValueError, r"hard mask must have shape \(B, \*S\)"),
        (lambda: ck.prototype_pool(X, LABELS[:, :3], 3), ValueError, r"hard mask must have shape"),
        (lambda: ck.prototype_pool(X, LABELS), ValueError, "num_classes is required"),
        (lambda: ck.prototype_pool(X, LABELS, 0), ValueError, "num_classes must be a positive int"),
        (lambda: ck.prototype_pool(X, LABELS + 1, 3), ValueError, r"mask labels must be in \[0, 3\), found 3"),
        (lambda: ck.prototype_pool(X, LABELS - 1, 3), ValueError, r"mask labels must be in \[0, 3\), found -1"),
        (lambda: ck.prototype_pool(X, LABELS.bool(), 3), TypeError, "mask must be integer labels or floating weights"),
        (lambda: ck.prototype_pool(X, LABELS, 3, ignore_index=1), ValueError, "ignore_index=1 is a class index"),
        (lambda: ck.prototype_pool(X, torch.rand(2, 3, 4, 5), 4), ValueError, "soft mask has K=3 classes"),
        (lambda: ck.prototype_pool(X, torch.rand(2, 3, 4, 6)), ValueError, r"soft mask must have shape \(B, K, \*S\)"),
        (lambda: ck.prototype_pool(X, -torch.rand(2, 3, 4, 5)), ValueError, "soft mask weights must be non-negative"),
        (
            lambda: ck.prototype_pool(X, torch.full((2, 3, 4, 5), float("nan"))),
            ValueError,
            "soft mask weights must be finite",
        ),
        (
            lambda: ck.prototype_pool(X, torch.rand(2, 3, 4, 5), ignore_index=0),
            ValueError,
            "ignore_index applies to hard",
        ),
        (
            lambda: ck.intra_class_update(X, LABELS, 3, classes=[3]),
            ValueError,
            r"classes must hold class indices in \[0, 3\)",
        ),
        (lambda: ck.prototype_scatter(torch.randn(2, 3), LABELS), ValueError, r"proto must have shape \(B, K, C\)"),
        (lambda: ck.prototype_scatter(torch.randn(2, 3, 4), torch.rand(2, 2, 4, 5)), ValueError, "soft mask has K=2"),
        (
            lambda: ck.prototype_distances(torch.randn(2, 3, 4), torch.ones(2, 4)),
            ValueError,
            r"counts must have shape \(B, K\)",
        ),
        (
            lambda: ck.inter_class_loss(torch.randn(2, 3, 4), torch.ones(2, 3), form="x"),
            ValueError,
            "form must be 'paper' or 'official'",
        ),
        (lambda: ck.IntraClassUpdate(4, mode="fuzzy"), ValueError, "mode must be 'hard' or 'soft'"),
        (
            lambda: ck.IntraClassUpdate(4)(X, torch.randn(2, 3, 2, 2)),
            ValueError,
            r"attention_logits must have shape \(B, K=4",
        ),
        (lambda: ck.InterClassDistanceLoss(form="nope"), ValueError, "form must be"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_compiled_kernel_refuses_out_of_range_labels_itself():
    """Validation is skipped while torch.compile traces; the C++ kernel must still never index out of range."""
    x = torch.randn(1, 2, 8)
    with pytest.raises(RuntimeError, match=r"labels must be in \[0, 3\)"):
        torch.ops.cga.intra_update_hard(x, torch.full((1, 8), 5), torch.ones(3, dtype=torch.bool), True)
