"""BraTS 2023-2025 cohorts: the cohort code in a case ID, and the layouts each cohort may be read as.

The challenges name cases ``BraTS-<CODE>-<number>-<timepoint>`` (``BraTS-GLI-00000-000``,
``BraTS-PED-00012-000``, ``BraTS-MEN-RT-0001-1``). The cohorts share file names but not labels
(label 1 is necrosis in GLI and enhancing tumour in PED), so the code, never the label values,
chooses the layout (``layouts.py``): the first of ``COHORT_LAYOUTS[code]`` unless another is
preferred or forced. An ID with an unknown code is refused, listing the known ones.
"""

from __future__ import annotations

import re

from .errors import DataError

COHORT_LAYOUTS = {  # code -> layouts of the cohort, the default first
    "GLI": ("brats2023", "brats2024"),
    "SSA": ("brats-ssa",),
    "MEN": ("brats-men",),
    "GoAT": ("brats-goat",),
    "MET": ("brats-met",),
    "PED": ("brats-ped",),
    "MEN-RT": ("brats-men-rt",),
}
_CODE = re.compile(r"^BraTS-(MEN-RT|[A-Za-z]+)-[0-9]")
_KNOWN = {code.lower(): code for code in COHORT_LAYOUTS}


def cohort_code(case_id: str) -> str | None:
    """The cohort code of a ``BraTS-<CODE>-<number>...`` case ID (as spelled in ``COHORT_LAYOUTS``), None when
    the ID has no such form; an unknown code raises ``DataError`` listing the known ones."""
    match = _CODE.match(case_id)
    if match is None:
        return None
    code = _KNOWN.get(match.group(1).lower())
    if code is None:
        raise DataError(
            f"case {case_id}: unknown BraTS cohort code {match.group(1)!r}; known codes: {', '.join(COHORT_LAYOUTS)} "
            "(rename the case with the code of its cohort)"
        )
    return code


def folder_cohort(case_ids, root) -> str | None:
    """The one cohort code the IDs ``case_ids`` of the folder ``root`` name; None when no ID names one.
    IDs of several cohorts, or some with a code and some without, raise ``DataError`` naming them."""
    codes: dict = {}
    for case_id in case_ids:
        codes.setdefault(cohort_code(case_id), []).append(case_id)
    if len(codes) > 1:
        found = "; ".join(f"{code or 'no cohort code'}: {', '.join(ids[:3])}" for code, ids in codes.items())
        raise DataError(f"{root} mixes BraTS cohorts, whose labels differ ({found}); put each cohort in its own folder")
    return next(iter(codes), None)


def cohort_of(layout: str) -> str | None:
    """The cohort code whose layouts include ``layout`` (None for brats2021, msd)."""
    return next((code for code, names in COHORT_LAYOUTS.items() if layout in names), None)
