"""Dataset layouts: one table per public brain-tumour layout and BraTS cohort, and which layout a folder is.

| layout         | case IDs       | files                                                  | labels                    |
|----------------|----------------|--------------------------------------------------------|----------------------------|
| `brats2021`    | any            | `<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz`, `<ID>_seg`      | 1 NCR/NET, 2 ED, 4 ET     |
| `brats2023`    | `BraTS-GLI`    | `<ID>/<ID>-{t2f,t1n,t1c,t2w}.nii.gz`, `<ID>-seg`       | 1 NETC, 2 SNFH, 3 ET      |
| `brats2024`    | `BraTS-GLI`    | as `brats2023` (pre + post-treatment, 2024-2025)       | + 4 RC                    |
| `brats-ssa`    | `BraTS-SSA`    | as `brats2023`                                         | as `brats2023`            |
| `brats-men`    | `BraTS-MEN`    | as `brats2023`                                         | as `brats2023`            |
| `brats-goat`   | `BraTS-GoAT`   | as `brats2023`                                         | as `brats2023`            |
| `brats-met`    | `BraTS-MET`    | as `brats2023`                                         | 1 NETC, 2 SNFH, 3 ET, 4 RC|
| `brats-ped`    | `BraTS-PED`    | as `brats2023`                                         | 1 ET, 2 NETC, 3 CC, 4 ED  |
| `brats-men-rt` | `BraTS-MEN-RT` | `<ID>/<ID>_t1c.nii.gz` (T1c only), `<ID>_gtv.nii.gz`   | 1 GTV                     |
| `msd`          | any            | `dataset.json`, `imagesTr/<c>` 4-D, `labelsTr/<c>`     | 1 edema, 2 NET, 3 ET      |

Label values and evaluated regions are those of the official configs shipped in the
``brats-evaluation`` package (``brats_evaluation/configs/``): ``config_gli.yaml`` (GLI; SSA, for
which none is shipped), ``config_MenPre.yaml`` (MEN), ``config_GoAT.yaml``, ``config_mets.yaml``
(MET), ``config_ped.yaml`` (PED) and ``config_MenRT.yaml`` (MEN-RT); ``Layout.config`` names it.

The layout comes from file names and case IDs, never from label values: ``detect_layout`` matches
a folder against the file names of every table; among the layouts that share ``brats2023``'s
names the cohort code of the IDs chooses (``cohorts.py``). ``--layout NAME`` forces a layout only
where the IDs do not contradict it: its file names must be the folder's, and its scheme must read
every label value as the cohort's does (a PED folder is never read as GLI). A folder that mixes
layouts or cohorts, or matches none, is refused with what was found and what each layout expects.

Inside the package an image is ``(C, X, Y, Z)``: the layout's sequences (``Layout.modalities``, in
the order of ``MODALITIES``: the released code's flair, t1ce, t1, t2, whatever the file order);
MEN-RT has one, T1c. ``CaseFiles`` records where each of those channels comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cohorts import COHORT_LAYOUTS, cohort_of, folder_cohort
from .errors import DataError
from .file_safety import check_case_ids
from .labels import CLASS_NAMES, CYST, GTV, LabelScheme

MODALITIES = ("flair", "t1ce", "t1", "t2")  # the channel order inside the network (a layout may have fewer)
NIFTI = ".nii.gz"
MSD_MODALITY_NAMES = ("FLAIR", "T1w", "t1gd", "T2w")  # Task01's dataset.json "modality" 0..3


@dataclass(frozen=True)
class Layout:
    """One dataset layout. ``files``: modality -> file token (``<ID><separator><token>.nii.gz``), the
    segmentation's token ``seg_token``; for ``msd`` (one 4-D file per case) ``channels`` gives each
    modality's index in the file. ``config``: the official brats-evaluation config of its labels."""

    name: str
    title: str
    scheme: LabelScheme
    expects: str
    files: dict | None = None
    separator: str = ""
    channels: dict | None = None
    seg_token: str = "seg"
    config: str | None = None

    @property
    def is_folder_per_case(self) -> bool:
        return self.files is not None

    @property
    def modalities(self) -> tuple:
        """The sequences of a case, in ``MODALITIES`` order (the image's channels)."""
        return tuple(m for m in MODALITIES if m in (self.files or self.channels))

    @property
    def names_kind(self) -> str:
        """The layout whose file names this one shares (``brats2023`` for every BraTS 2023+ cohort but MEN-RT)."""
        return next(n for n, lay in LAYOUTS.items() if (lay.files, lay.separator) == (self.files, self.separator))

    def file_name(self, case_id: str, modality: str) -> str:
        """``<ID><separator><token>.nii.gz`` of one sequence (folder-per-case layouts)."""
        return f"{case_id}{self.separator}{self.files[modality]}{NIFTI}"


BRATS2023_FILES = {"flair": "t2f", "t1ce": "t1c", "t1": "t1n", "t2": "t2w"}
GLI_VALUES, GLI_NAMES = (0, 1, 2, 3), ("background", "NETC", "SNFH", "ET")
GLI_REGIONS = (("ET", (3,)), ("TC", (1, 3)), ("WT", (1, 2, 3)))
GLI_GROUPS = (("NETC", (1,)), ("SNFH", (2,)))  # config_gli.yaml's single-label groups
RC = (("RC", (4,)),)
BRATS2023_EXPECTS = "<ID>/<ID>-{t2f,t1n,t1c,t2w}.nii.gz and <ID>-seg.nii.gz"


def _brats2023_names(name, title, scheme, code, config) -> Layout:
    """A layout with ``brats2023``'s file names, for the cohort of case IDs ``BraTS-<code>-...``."""
    expects = f"{BRATS2023_EXPECTS} (ID like BraTS-{code}-00000-000)"
    return Layout(name, title, scheme, expects, files=BRATS2023_FILES, separator="-", config=config)


def _gli_like(name, code, *, with_rc=False, groups=GLI_GROUPS) -> LabelScheme:
    values, names = (GLI_VALUES + (4,), GLI_NAMES + ("RC",)) if with_rc else (GLI_VALUES, GLI_NAMES)
    return LabelScheme(name, values, names, region_labels=GLI_REGIONS + (RC if with_rc else ()), group_labels=groups)


PED_SCHEME = LabelScheme(
    "brats-ped",
    (0, 1, 2, 3, 4),
    ("background", "ET", "NETC", "CC", "ED"),
    tissues=(CLASS_NAMES[0], CLASS_NAMES[3], CLASS_NAMES[1], CYST, CLASS_NAMES[2]),
    region_labels=(("ET", (1,)), ("TC", (1, 2, 3)), ("WT", (1, 2, 3, 4))),
    group_labels=(("NETC", (2,)), ("CC", (3,)), ("ED", (4,))),
)
MEN_RT_SCHEME = LabelScheme(
    "brats-men-rt", (0, 1), ("background", "GTV"), tissues=(CLASS_NAMES[0], GTV), region_labels=(("GTV", (1,)),)
)
LAYOUTS = {
    "brats2021": Layout(
        "brats2021",
        "BraTS 2018-2021",
        LabelScheme("brats2021", (0, 1, 2, 4), ("background", "NCR/NET", "ED", "ET")),
        "<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz and <ID>_seg.nii.gz",
        files={m: m for m in MODALITIES},
        separator="_",
    ),
    "brats2023": _brats2023_names(
        "brats2023", "BraTS 2023 glioma, pre-treatment", _gli_like("brats2023", "GLI"), "GLI", "config_gli.yaml"
    ),
    "brats2024": _brats2023_names(
        "brats2024",
        "BraTS 2024-2025 glioma, pre + post-treatment",
        _gli_like("brats2024", "GLI", with_rc=True),
        "GLI",
        "config_gli.yaml",
    ),
    "brats-ssa": _brats2023_names(
        "brats-ssa", "BraTS-Africa glioma (SSA)", _gli_like("brats-ssa", "SSA"), "SSA", "config_gli.yaml"
    ),
    "brats-men": _brats2023_names(
        "brats-men",
        "BraTS meningioma, pre-operative",
        _gli_like("brats-men", "MEN", groups=()),
        "MEN",
        "config_MenPre.yaml",
    ),
    "brats-goat": _brats2023_names(
        "brats-goat",
        "BraTS generalisability across tumours (GoAT)",
        _gli_like("brats-goat", "GoAT", groups=()),
        "GoAT",
        "config_GoAT.yaml",
    ),
    "brats-met": _brats2023_names(
        "brats-met",
        "BraTS metastases, pre + post-treatment",
        _gli_like("brats-met", "MET", with_rc=True, groups=()),
        "MET",
        "config_mets.yaml",
    ),
    "brats-ped": _brats2023_names("brats-ped", "BraTS paediatric tumours", PED_SCHEME, "PED", "config_ped.yaml"),
    "brats-men-rt": Layout(
        "brats-men-rt",
        "BraTS meningioma radiotherapy (T1c only)",
        MEN_RT_SCHEME,
        "<ID>/<ID>_t1c.nii.gz and <ID>_gtv.nii.gz (ID like BraTS-MEN-RT-0000-1)",
        files={"t1ce": "t1c"},
        separator="_",
        seg_token="gtv",
        config="config_MenRT.yaml",
    ),
    "msd": Layout(
        "msd",
        "Medical Segmentation Decathlon Task01_BrainTumour",
        LabelScheme("msd", (0, 2, 1, 3), ("background", "non-enhancing tumour", "edema", "enhancing tumour")),
        "dataset.json, imagesTr/<case>.nii.gz 4-D (X, Y, Z, 4: FLAIR, T1w, T1gd, T2w), labelsTr/<case>.nii.gz",
        channels={"flair": 0, "t1": 1, "t1ce": 2, "t2": 3},
    ),
}
NAME_KINDS = ("brats2021", "brats-men-rt", "brats2023")  # the distinct file-name patterns of folder-per-case layouts


@dataclass(frozen=True, order=True)
class CaseFiles:
    """Where one case's data is: ``images[c]`` holds sequence ``Layout.modalities[c]`` of its layout (channel
    ``channels[c]`` of a 4-D file, or the whole file when None); ``seg`` is None when the case has no segmentation."""

    case_id: str
    layout: str
    images: tuple
    channels: tuple
    seg: Path | None

    @property
    def name(self) -> str:
        """The case ID (what a case folder's ``name`` was before layouts)."""
        return self.case_id

    @property
    def modalities(self) -> tuple:
        """The sequence of each image, ``LAYOUTS[layout].modalities``."""
        return LAYOUTS[self.layout].modalities

    @property
    def sources(self) -> tuple:
        """Every file the case reads (images once each, then the segmentation if any)."""
        return tuple(dict.fromkeys(self.images)) + ((self.seg,) if self.seg else ())


def get_layout(name: str) -> Layout:
    """The table of layout ``name``; an unknown name raises naming the known ones."""
    if name not in LAYOUTS:
        raise DataError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def case_paths(layout: Layout, root: Path, case_id: str) -> tuple:
    """``(image file of each of layout.modalities, segmentation file)`` of case ``case_id`` of a dataset
    folder ``root`` in ``layout`` (an MSD task folder for ``msd``: its training files)."""
    if layout.is_folder_per_case:
        folder = root / case_id
        seg = folder / f"{case_id}{layout.separator}{layout.seg_token}{NIFTI}"
        return tuple(folder / layout.file_name(case_id, m) for m in layout.modalities), seg
    return (root / "imagesTr" / f"{case_id}{NIFTI}",) * len(layout.modalities), root / "labelsTr" / f"{case_id}{NIFTI}"


def folder_case(folder: Path, layout: Layout) -> CaseFiles:
    """The ``CaseFiles`` of a case folder ``<ID>/`` of a folder-per-case layout."""
    images, seg = case_paths(layout, folder.parent, folder.name)
    return CaseFiles(folder.name, layout.name, images, (None,) * len(images), seg if seg.is_file() else None)


def folder_kind(folder: Path) -> str | None:
    """Which file names (``NAME_KINDS``: brats2021, brats-men-rt, brats2023) the files of ``folder`` have, or None."""
    for name in NAME_KINDS:
        layout = LAYOUTS[name]
        tokens = list(layout.files.values()) + [layout.seg_token]
        if any((folder / f"{folder.name}{layout.separator}{t}{NIFTI}").is_file() for t in tokens):
            return name
    return None


def _visible_niftis(folder: Path) -> list:
    return sorted(p for p in folder.glob(f"*{NIFTI}") if not p.name.startswith("."))  # skips macOS "._" files


def _msd_images(root: Path) -> Path | None:
    """The images folder (imagesTr, or the imagesTs given) of an MSD task folder ``root`` or its imagesTr/imagesTs."""
    if (root / "dataset.json").is_file() and (root / "imagesTr").is_dir():
        return root / "imagesTr"
    if root.name in ("imagesTr", "imagesTs") and (root.parent / "dataset.json").is_file():
        return root
    return None


def _check_msd_modalities(task: Path) -> None:
    path = task / "dataset.json"
    try:
        modality = json.loads(path.read_text()).get("modality")
    except (OSError, ValueError, AttributeError) as err:
        raise DataError(f"cannot read {path} as the MSD dataset description: {err}") from err
    found = tuple(modality.get(str(i)) for i in range(len(modality))) if isinstance(modality, dict) else modality
    if found is not None and tuple(str(m).lower() for m in found) != tuple(m.lower() for m in MSD_MODALITY_NAMES):
        raise DataError(
            f"{path}: modality order {found}, expected {MSD_MODALITY_NAMES} (Task01_BrainTumour); "
            "reorder the channels or the file is not Task01"
        )


def msd_cases(images: Path) -> list:
    """The ``CaseFiles`` of an MSD task's ``images`` folder (imagesTr or imagesTs: 4-D), labels from ``labelsTr``."""
    task = images.parent
    _check_msd_modalities(task)
    layout = LAYOUTS["msd"]
    cases = []
    for path in _visible_niftis(images):
        case_id = path.name[: -len(NIFTI)]
        seg = task / "labelsTr" / path.name if images.name == "imagesTr" else None
        cases.append(
            CaseFiles(
                case_id,
                "msd",
                (path,) * len(layout.modalities),
                tuple(layout.channels[m] for m in layout.modalities),
                seg if seg is not None and seg.is_file() else None,
            )
        )
    return cases


def _survey(root: Path) -> dict:
    """What ``root`` holds: ``{kind: [case folders]}`` for folder-per-case kinds, ``"msd"`` for an MSD
    task, ``None`` for sub-folders that match no layout (other names, ``.nii`` files, empty): beside
    valid case folders they make ``find_cases`` refuse the folder, naming them, never drop them."""
    msd = _msd_images(root)
    if msd is not None:
        return {"msd": [msd]}
    kind = folder_kind(root)
    if kind is not None:
        return {kind: [root]}
    found: dict = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found.setdefault(folder_kind(folder), []).append(folder)
    return found


def _expectations() -> str:
    return "; ".join(f"{name}: {layout.expects}" for name, layout in LAYOUTS.items())


def _uncompressed_hint(folders) -> str:
    """A hint when ``.nii`` files sit where ``.nii.gz`` files are expected."""
    if any(p for folder in folders for p in folder.glob("*.nii") if not p.name.startswith(".")):
        return "; .nii files found: cga reads gzip-compressed NIfTI, compress them to .nii.gz (gzip *.nii)"
    return ""


def _describe(found: dict, root: Path) -> str:
    shown = {k: (20 if k is None else 3) for k in found}  # every unrecognised folder is named (up to 20)
    parts = [
        f"{len(v)} {k or 'unrecognised'} {'images folder' if k == 'msd' else 'case folder'}{'s' if len(v) > 1 else ''} "
        f"({', '.join(p.name for p in v[: shown[k]])}{', ...' if len(v) > shown[k] else ''})"
        for k, v in found.items()
    ]
    loose = _visible_niftis(root)
    if loose:
        names = ", ".join(p.name for p in loose[:3]) + (", ..." if len(loose) > 3 else "")
        parts.append(f"{len(loose)} NIfTI file{'s' if len(loose) > 1 else ''} directly in the folder ({names})")
    return (", ".join(parts) or "no NIfTI files or case folders") + _uncompressed_hint([root, *found.get(None, [])])


def cohort_layouts(kind: str, code: str | None, root) -> tuple:
    """The layouts a folder of file names ``kind`` whose IDs name cohort ``code`` may be read as, the default
    first: the cohort's own, then those with its file names that read every label value as all of them do.
    With no cohort code: every layout of those file names (then one must be forced or preferred)."""
    if code is None or kind in ("brats2021", "msd"):
        return tuple(n for n, lay in LAYOUTS.items() if lay.names_kind == kind) if kind != "msd" else ("msd",)
    own = COHORT_LAYOUTS[code]
    if LAYOUTS[own[0]].names_kind != kind:
        raise DataError(
            f"{root}: the case IDs name the BraTS {code} cohort, whose files are {LAYOUTS[own[0]].expects}, "
            f"but the folder holds {LAYOUTS[kind].expects}; rename the files or the cases"
        )
    alike = [
        n
        for n, lay in LAYOUTS.items()
        if n not in own and lay.names_kind == kind and all(lay.scheme.reads_like(LAYOUTS[o].scheme) for o in own)
    ]
    return tuple(own) + tuple(alike)


def _refuse_forced(forced: str, kind: str, code: str | None, allowed: tuple, root: Path) -> None:
    layout = get_layout(forced)
    if layout.names_kind != kind:
        raise DataError(
            f"--layout {forced} expects {layout.expects}, but {root} holds {kind} files "
            f"({LAYOUTS[kind].expects}); pass --layout {' or '.join(allowed)}, or none to detect it"
        )
    own = LAYOUTS[COHORT_LAYOUTS[code][0]].scheme
    raise DataError(
        f"--layout {forced} reads labels as {layout.scheme.describe()}, but the case IDs of {root} name the BraTS "
        f"{code} cohort, whose labels are {own.describe()}: reading them as {forced} would be silently wrong; "
        f"pass --layout {' or '.join(allowed)}, or none to read them as {allowed[0]}"
    )


def _resolve(kind: str, forced: str | None, prefer: str | None, root: Path, case_ids) -> Layout:
    code = folder_cohort(case_ids, root) if kind not in ("brats2021", "msd") else None
    allowed = cohort_layouts(kind, code, root)
    if forced is not None:
        if forced not in allowed:
            _refuse_forced(forced, kind, code, allowed, root)
        return LAYOUTS[forced]
    if prefer in (COHORT_LAYOUTS[code] if code else allowed):  # a checkpoint's layout, if of the IDs' cohort
        return LAYOUTS[prefer]
    if code is None and kind not in ("brats2021", "msd"):
        raise DataError(
            f"the case IDs of {root} ({', '.join(list(case_ids)[:3])}) name no BraTS cohort (BraTS-<CODE>-..., CODE "
            f"one of {', '.join(COHORT_LAYOUTS)}), which chooses the labels: pass --layout {' or '.join(allowed)}"
        )
    return LAYOUTS[allowed[0]]


def find_cases(root, *, layout: str | None = None, prefer: str | None = None) -> list:
    """The cases under ``root`` (a case folder, a folder of case folders, an MSD task or its imagesTr/imagesTs).

    The layout is detected from the file names and, among layouts sharing them, the cohort code of
    the case IDs; ``layout`` forces one where the IDs allow it; ``prefer`` (e.g. a checkpoint's
    layout) is taken when they allow it. Mixed or unknown folders raise ``DataError`` listing what
    was found and what each layout expects; so do case IDs that are not safe file names
    (``file_safety.check_case_ids``), all of them before any command writes a case.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"input folder does not exist: {root}")
    found = _survey(root)
    kinds = list(found)
    if len(kinds) != 1 or kinds[0] is None:
        what = "mixes layouts" if len(kinds) > 1 else "matches no layout"
        raise DataError(f"{root} {what}: found {_describe(found, root)}; expected one of: {_expectations()}")
    folders = found[kinds[0]]
    chosen = _resolve(kinds[0], layout, prefer, root, [] if kinds[0] == "msd" else [f.name for f in folders])
    cases = msd_cases(folders[0]) if kinds[0] == "msd" else [folder_case(folder, chosen) for folder in folders]
    if not cases:
        raise DataError(f"no {chosen.name} cases in {root}: found {_describe(found, root)}; expected {chosen.expects}")
    check_case_ids([c.case_id for c in cases], root)
    return [CaseFiles(c.case_id, chosen.name, c.images, c.channels, c.seg) for c in cases]


def likely_layouts(values, current: str) -> str:
    """A hint for a segmentation whose label ``values`` do not fit layout ``current``'s scheme. It names only
    layouts that read every value as ``current``'s cohort does (all of its layouts)."""
    cohort = COHORT_LAYOUTS.get(cohort_of(current), (current,))
    fits = [
        n
        for n, lay in LAYOUTS.items()
        if n != current
        and set(values) <= set(lay.scheme.values)
        and all(lay.scheme.reads_like(LAYOUTS[c].scheme) for c in cohort)
    ]
    same_names = [n for n in fits if LAYOUTS[n].names_kind == LAYOUTS[current].names_kind]
    if same_names:
        return f"likely layout: {same_names[0]}, which has the same file names (pass --layout {same_names[0]})"
    if fits:
        return (
            f"the values fit {' or '.join(fits)}: segmentations of another release under {current} file names? "
            f"convert the labels to {LAYOUTS[current].scheme.describe()}"
        )
    return f"no layout that reads labels as {current} does uses these values: is this a {current} segmentation file?"


def segmentation_classes(seg, path, layout: str):
    """Label values read from ``path`` (a segmentation of ``layout``) -> class indices ``uint8``.

    A value outside the layout's scheme raises ``DataError`` naming the file, the value and the likely layout.
    """
    try:
        return LAYOUTS[layout].scheme.to_classes(seg)
    except ValueError as err:
        raise DataError(f"{path}: {err}; {likely_layouts(np.unique(seg).tolist(), layout)}") from err
