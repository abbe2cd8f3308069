"""Checks of a run's data made before any training step, so that a bad case fails now, as one line naming
its file, and not inside a loader worker after the progress bar started.

Raw folders: every case's header checks first (``cases.check_headers``: each sequence present, NIfTI,
one 3-D shape, numeric, the segmentation of that shape), then every case is read once (``load_case``:
finite intensities, label values of the layout's scheme), training and validation cases alike, so a
bad case fails before the first epoch. Training from a raw folder reads every case at each sample
anyway; one more read each is small beside it. Caches: each case's stored label values must be its
layout's scheme, its classes within the scheme's class count (``cga preprocess`` read the voxels).
"""

from __future__ import annotations

from tqdm import tqdm

from ..data.cases import check_headers, load_case
from ..data.errors import DataError
from ..data.layouts import get_layout
from ..data.loader import RawCases


def unlabelled(cases, case_ids) -> list:
    """The IDs among ``case_ids`` of ``cases`` (``open_cases``) without a segmentation."""
    if isinstance(cases, RawCases):
        return [c for c in case_ids if cases.folders[c].seg is None]
    return [c for c in case_ids if cases.arrays(c).classes is None]


def _check_cached_labels(cases, case_ids) -> None:
    """Each cached case's label values are its layout's scheme and its class locations lie within it."""
    scheme = get_layout(cases.layout).scheme
    for case_id in case_ids:
        props = cases.cache.properties(case_id)
        classes = cases.cache.arrays(case_id, props).locations[:, 0]
        if props.get("labels") != list(scheme.values) or (classes.size and int(classes.max()) >= scheme.num_classes):
            raise DataError(
                f"{cases.cache.root / case_id}: labels {props.get('labels')} are not the {cases.layout} scheme "
                f"({scheme.describe()}); rebuild the cache with cga preprocess --rebuild"
            )


def check_data(cases, case_ids) -> None:
    """Every data check of ``case_ids`` of ``cases`` before training (raw: headers, then each case read;
    cache: label values)."""
    if isinstance(cases, RawCases):
        for case_id in case_ids:
            check_headers(cases.folders[case_id])
        for case_id in tqdm(case_ids, desc="check cases", leave=False, disable=None):
            load_case(cases.folders[case_id])
    else:
        _check_cached_labels(cases, case_ids)


def require_labels(cases, train_ids, val_ids) -> None:
    """Refuse training or validation cases without a segmentation, naming them; then ``check_data`` on all."""
    for role, ids in (("training", train_ids), ("validation", val_ids)):
        missing = unlabelled(cases, ids)
        if missing:
            raise DataError(
                f"{len(missing)} {role} case{'s' if len(missing) > 1 else ''} without a segmentation file "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): training needs labels for every "
                "case; add them or move those cases out of --data"
            )
    check_data(cases, list(train_ids) + list(val_ids))
