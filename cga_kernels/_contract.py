"""The parts of the operator contract that several docstrings share.

Every public function's docstring (``cga_kernels/ops/<op>.py``) is written once, with
``{placeholders}`` for these shared paragraphs; ``@contract`` fills them in at import, so
``help(cga_kernels.intra_class_update)`` shows the whole contract. ``cga_kernels.reference``
reuses the same docstrings (``reference_of``) rather than holding a second copy.
"""

from __future__ import annotations

import inspect

FRAGMENTS = {
    "shapes": """\
Shapes: features ``x`` are ``(B, C, *S)`` with one or more spatial dims ``S`` (1-D, 2-D
and 3-D all work), ``N = prod(S)``; prototypes ``proto`` are ``(B, K, C)``; ``counts`` are
``(B, K)``. Non-contiguous and channels-last inputs are accepted.""",
    "mask": """\
mask: the class mask, either
        hard: integer labels ``(B, *S)`` with values in ``[0, K)`` (or ``ignore_index``);
          ``num_classes`` is then required; the weights are the one-hot of the labels;
        soft: non-negative, finite floating weights ``w`` of shape ``(B, K, *S)``
          (for example a softmax over K); differentiable.""",
    "num_classes": """\
num_classes: K, the number of classes: required for a hard mask; for a soft
        mask it must equal ``mask.shape[1]`` when given.""",
    "ignore_index": """\
ignore_index: hard masks only: a label value outside ``[0, K)`` whose voxels
        belong to no class (not pooled, scattered as 0). None (default): every label must
        be in ``[0, K)``.""",
    "empty": """\
Empty classes: a class with ``counts[b, k] == 0`` (absent from sample b) gets a zero
prototype; no value or gradient is ever NaN.""",
    "dtypes": """\
Dtypes: float16/bfloat16 inputs accumulate in float32 and are returned in the input dtype;
``counts`` is returned in the accumulation dtype (float32, or float64 for float64 input)
because a voxel count overflows float16 beyond 65504 voxels.""",
    "grads": """\
Gradients: with respect to ``x`` and to soft weights (also through ``counts``); hard labels
get none.""",
    "errors": """\
Errors: ``TypeError``/``ValueError`` naming the argument for a wrong type, shape, device,
K, label outside ``[0, K)`` or negative/non-finite weight. On CUDA tensors (and on the Triton
path, ``cga_kernels.triton_ops``) the label and weight checks never read data back to the
host: they are device-side assertions (``torch._assert_async``), which fail at the next
synchronisation on CUDA ("device-side assert triggered") and at once on CPU (``RuntimeError``).""",
}
# the rules every operator on features and a class mask shares
FRAGMENTS["rules"] = "\n\n".join(FRAGMENTS[k] for k in ("shapes", "empty", "dtypes", "grads", "errors"))


def contract(fn):
    """Fill the shared ``{placeholders}`` of ``fn``'s docstring (see ``FRAGMENTS``)."""
    fn.__doc__ = inspect.cleandoc(fn.__doc__).format(**FRAGMENTS)
    return fn


def reference_of(public):
    """Give a reference function the contract of the public function it is the oracle of."""

    def attach(fn):
        fn.__doc__ = (
            f"Plain-PyTorch reference of ``cga_kernels.{public.__name__}`` (the tests' oracle).\n\n{public.__doc__}"
        )
        return fn

    return attach
