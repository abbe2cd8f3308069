"""Checks of a run's data made before any training (a missing segmentation fails now, not after an epoch)."""

from __future__ import annotations

from ..data.errors import DataError
from ..data.loader import RawCases


def unlabelled(cases, case_ids) -> list:
    """The IDs among ``case_ids`` of ``cases`` (``open_cases``) without a segmentation."""
    if isinstance(cases, RawCases):
        return [c for c in case_ids if cases.folders[c].seg is None]
    return [c for c in case_ids if cases.arrays(c).classes is None]


def require_labels(cases, train_ids, val_ids) -> None:
    """Refuse training or validation cases without a segmentation, naming them."""
    for role, ids in (("training", train_ids), ("validation", val_ids)):
        missing = unlabelled(cases, ids)
        if missing:
            raise DataError(
                f"{len(missing)} {role} case{'s' if len(missing) > 1 else ''} without a segmentation file "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): training needs labels for every case; "
                "add them or move those cases out of --data"
            )
