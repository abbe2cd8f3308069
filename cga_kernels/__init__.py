"""cga_kernels: fused operators for category-guided attention (CGA U-Net).

>>> import cga_kernels as ck
>>> y, proto, counts = ck.intra_class_update(x, labels, num_classes=4)

See ``cga_kernels.reference`` for the plain-PyTorch statement of every operator.
"""

from . import reference
from .compiled import (
    backend,
    inter_class_loss,
    intra_class_update,
    prototype_distances,
    prototype_pool,
    prototype_scatter,
)
from .modules import InterClassDistanceLoss, IntraClassUpdate, attention_to_mask

__all__ = [
    "prototype_pool",
    "prototype_scatter",
    "intra_class_update",
    "prototype_distances",
    "inter_class_loss",
    "IntraClassUpdate",
    "InterClassDistanceLoss",
    "attention_to_mask",
    "backend",
    "reference",
]

__version__ = "0.1.0"
