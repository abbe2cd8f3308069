"""The public operators run on the Triton kernels on any device (``cga_triton::`` ops).

On CPU tensors this needs ``TRITON_INTERPRET=1`` set before ``triton`` is first imported; on
CUDA tensors the ordinary ``cga_kernels`` functions already dispatch to the same kernels.
Signatures, docstrings and semantics are those of ``cga_kernels``. Does not need the compiled
C++ library.
"""

import torch

from . import _library
from ._binding import Kernels, bind

if not _library.TRITON_LOADED:
    raise ImportError(f"cga_kernels.triton_ops: {_library.CUDA_DETAIL}")

KERNELS = Kernels(torch.ops.cga_triton, host_checks_on_cpu=False)
PUBLIC = bind(KERNELS)
globals().update(PUBLIC)  # prototype_pool, prototype_scatter, intra_class_update, ...

__all__ = list(PUBLIC)
