"""cga_kernels: fused operators for category-guided attention (CGA U-Net).

Operators (``help(cga_kernels.<name>)`` gives each one's formula, shapes, arguments, the
empty-class and dtype rules and an example):

- ``prototype_pool(x, mask, num_classes=None, ignore_index=None) -> (proto, counts)``
- ``prototype_scatter(proto, mask, ignore_index=None) -> y``
- ``intra_class_update(x, mask, num_classes=None, residual=True, classes=None, ignore_index=None)
  -> (y, proto, counts)``
- ``prototype_distances(proto, counts) -> d``
- ``inter_class_loss(proto, counts, form="paper") -> scalar``

Modules: ``IntraClassUpdate``, ``InterClassDistanceLoss`` (and ``attention_to_mask``).
``backend()`` says what serves each device (C++ on CPU, Triton on CUDA); ``reference`` holds
the same operators in plain PyTorch (the tests' oracle); ``flops`` one FLOP formula per op;
``registry`` one row per op, the list every other table is derived from.

>>> import torch, cga_kernels as ck
>>> x, labels = torch.randn(2, 8, 4, 4, 4), torch.randint(0, 4, (2, 4, 4, 4))
>>> y, proto, counts = ck.intra_class_update(x, labels, num_classes=4)
>>> y.shape, proto.shape, counts.shape
(torch.Size([2, 8, 4, 4, 4]), torch.Size([2, 4, 8]), torch.Size([2, 4]))
"""

from . import flops, reference
from ._front import PUBLIC, backend
from .modules import InterClassDistanceLoss, IntraClassUpdate, attention_to_mask

globals().update(PUBLIC)  # the operators of cga_kernels.registry: prototype_pool, ...

__all__ = [
    *PUBLIC,
    "IntraClassUpdate",
    "InterClassDistanceLoss",
    "attention_to_mask",
    "backend",
    "reference",
    "flops",
]

__version__ = "0.1.0"
