"""Public operators: validation and reshaping around the low-level custom ops.

``KernelFront(torch.ops.cga)`` is the front used by ``cga_kernels``; the Triton entry points
(``cga_kernels.triton_ops``) bind the same front to ``torch.ops.cga_triton``. Shapes: see
``cga_kernels.reference``, which states the same contract in plain PyTorch.
"""

from __future__ import annotations

import torch

from ._math import inter_class_loss_with
from ._validate import MaskSpec, check_proto_counts, parse_mask


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` -> contiguous ``(B, C, N)`` (one copy for strided or channels-last input)."""
    return x.reshape(x.shape[0], x.shape[1], -1).contiguous()


class KernelFront:
    """The public operators bound to one namespace of low-level ops (``torch.ops.<ns>``)."""

    def __init__(self, ops):
        self._ops = ops

    def _soft_weights(self, spec: MaskSpec, dtype: torch.dtype) -> torch.Tensor:
        return spec.weights.to(dtype).contiguous()

    def prototype_pool(self, x, mask, num_classes=None, ignore_index=None):
        """Masked average pooling. ``x (B, C, *S)`` -> ``(proto (B, K, C), counts (B, K))``."""
        spec = parse_mask(x, mask, num_classes, ignore_index)
        if spec.hard:
            return self._ops.pool_hard(_flat(x), spec.labels, spec.num_classes)
        return self._ops.pool_soft(_flat(x), self._soft_weights(spec, x.dtype))

    def prototype_scatter(self, proto, mask, ignore_index=None):
        """Scatter prototypes ``(B, K, C)`` back to voxels -> ``(B, C, *S)``; ignored voxels get 0."""
        spec = parse_mask(None, mask, None, ignore_index, proto=proto)
        proto = proto.contiguous()
        if spec.hard:
            y = self._ops.scatter_hard(proto, spec.labels)
        else:
            y = self._ops.scatter_soft(proto, self._soft_weights(spec, proto.dtype))
        return y.reshape(proto.shape[0], proto.shape[2], *spec.spatial_shape)

    def intra_class_update(self, x, mask, num_classes=None, residual=True, classes=None, ignore_index=None):
        """Fused ``x + scatter(pool(x, mask), mask)`` -> ``(y (B, C, *S), proto (B, K, C), counts (B, K))``."""
        spec = parse_mask(x, mask, num_classes, ignore_index, classes=classes)
        if spec.hard:
            y, proto, counts = self._ops.intra_update_hard(_flat(x), spec.labels, spec.active, bool(residual))
        else:
            y, proto, counts = self._ops.intra_update_soft(_flat(x), self._soft_weights(spec, x.dtype), spec.active, bool(residual))
        return y.reshape(x.shape), proto, counts

    def prototype_distances(self, proto, counts):
        """Pairwise prototype distances ``(B, K, K)``; 0 where either class has ``counts == 0``."""
        check_proto_counts(proto, counts)
        return self._ops.pair_distances(proto.contiguous(), counts > 0)

    def inter_class_loss(self, proto, counts, form="paper"):
        """Inter-class loss, ``form="paper"`` (Eq. 9-10) or ``"official"`` (released code); a scalar."""
        check_proto_counts(proto, counts)
        return inter_class_loss_with(lambda p, present: self._ops.pair_distances(p.contiguous(), present), proto, counts, form)
