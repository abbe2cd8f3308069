"""The BraTS 2018-2021 case layout: which files a case holds and the order of the modalities in the tensor.

A case folder ``<ID>/`` holds ``<ID>_<modality>.nii.gz`` for each of ``MODALITIES`` and
optionally ``<ID>_seg.nii.gz``. Image tensors ``(4, X, Y, Z)`` stack the modalities in the
order of ``MODALITIES`` (the released code's order: flair, t1ce, t1, t2); every reader and
writer of cases in this package uses this one tuple.
"""

MODALITIES = ("flair", "t1ce", "t1", "t2")
