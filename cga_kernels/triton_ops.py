"""The public operators run on the Triton kernels on any device (``cga_triton::`` ops).

On CPU tensors this needs ``TRITON_INTERPRET=1`` set before ``triton`` is first imported; on
CUDA tensors the ordinary ``cga_kernels`` functions already dispatch to the same kernels.
Signatures and semantics are those of ``cga_kernels`` (see ``cga_kernels.reference``).
"""

import torch

from . import compiled  # noqa: F401  (loads the cga:: schemas the Triton ops copy)
from . import triton as _triton  # noqa: F401  (defines the cga_triton:: ops)
from .ops import KernelFront

_front = KernelFront(torch.ops.cga_triton)
prototype_pool = _front.prototype_pool
prototype_scatter = _front.prototype_scatter
intra_class_update = _front.intra_class_update
prototype_distances = _front.prototype_distances
inter_class_loss = _front.inter_class_loss
