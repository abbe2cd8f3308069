"""Dataset layouts: one table per public brain-tumour layout, and which layout a folder is.

| layout      | files                                                                    | labels                              |
|-------------|--------------------------------------------------------------------------|-------------------------------------|
| `brats2021` | `<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz`, `<ID>_seg.nii.gz`                 | 1 NCR/NET, 2 ED, 4 ET               |
| `brats2023` | `<ID>/<ID>-{t2f,t1n,t1c,t2w}.nii.gz`, `<ID>-seg.nii.gz`                  | 1 NETC, 2 SNFH, 3 ET                |
| `brats2024` | as `brats2023` (post-treatment glioma)                                   | 1 NETC, 2 SNFH, 3 ET, 4 RC          |
| `msd`       | `dataset.json`, `imagesTr/<c>.nii.gz` 4-D (FLAIR, T1w, T1gd, T2w), `labelsTr/<c>.nii.gz` | 1 edema, 2 non-enhancing tumour, 3 ET |

The layout comes from file names, never from label values: ``detect_layout`` matches a folder
against every table, and ``--layout NAME`` forces one. ``brats2023`` and ``brats2024`` share their
file names, so a folder of that kind is ``brats2023`` unless forced (or preferred, e.g. by the
layout a checkpoint was trained on); a 4 in its segmentations is then refused with a message
pointing at ``brats2024``. A folder that mixes layouts, or matches none, is refused with what was
found and what each layout expects.

Inside the package every image is ``(4, X, Y, Z)`` in one channel order, ``MODALITIES`` (the
released code's flair, t1ce, t1, t2), whatever the layout's file order; ``CaseFiles`` records
where each of those channels comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .labels import LabelScheme

MODALITIES = ("flair", "t1ce", "t1", "t2")  # the one channel order inside the network
NIFTI = ".nii.gz"
MSD_MODALITY_NAMES = ("FLAIR", "T1w", "t1gd", "T2w")  # Task01's dataset.json "modality" 0..3


@dataclass(frozen=True)
class Layout:
    """One dataset layout. ``files``: modality -> file token (``<ID><separator><token>.nii.gz``);
    for ``msd`` (one 4-D file per case) ``channels`` gives each modality's index in the file."""

    name: str
    title: str
    scheme: LabelScheme
    expects: str
    files: dict | None = None
    separator: str = ""
    channels: dict | None = None

    @property
    def is_folder_per_case(self) -> bool:
        return self.files is not None


BRATS2023_FILES = {"flair": "t2f", "t1ce": "t1c", "t1": "t1n", "t2": "t2w"}
LAYOUTS = {
    "brats2021": Layout(
        "brats2021",
        "BraTS 2018-2021",
        LabelScheme("brats2021", (0, 1, 2, 4), ("background", "NCR/NET", "ED", "ET")),
        "<ID>/<ID>_{flair,t1,t1ce,t2}.nii.gz and <ID>_seg.nii.gz",
        files={m: m for m in MODALITIES},
        separator="_",
    ),
    "brats2023": Layout(
        "brats2023",
        "BraTS 2023+ pre-treatment (GLI and later)",
        LabelScheme("brats2023", (0, 1, 2, 3), ("background", "NETC", "SNFH", "ET")),
        "<ID>/<ID>-{t2f,t1n,t1c,t2w}.nii.gz and <ID>-seg.nii.gz (ID like BraTS-GLI-00000-000)",
        files=BRATS2023_FILES,
        separator="-",
    ),
    "brats2024": Layout(
        "brats2024",
        "BraTS 2024 post-treatment glioma",
        LabelScheme("brats2024", (0, 1, 2, 3, 4), ("background", "NETC", "SNFH", "ET", "RC")),
        "as brats2023 (forced with --layout brats2024: the file names are the same)",
        files=BRATS2023_FILES,
        separator="-",
    ),
    "msd": Layout(
        "msd",
        "Medical Segmentation Decathlon Task01_BrainTumour",
        LabelScheme("msd", (0, 2, 1, 3), ("background", "non-enhancing tumour", "edema", "enhancing tumour")),
        "dataset.json, imagesTr/<case>.nii.gz 4-D (X, Y, Z, 4: FLAIR, T1w, T1gd, T2w), labelsTr/<case>.nii.gz",
        channels={"flair": 0, "t1": 1, "t1ce": 2, "t2": 3},
    ),
}
SHARED_FILE_NAMES = {"brats2023": ("brats2023", "brats2024")}  # detected kind -> layouts with those file names


@dataclass(frozen=True, order=True)
class CaseFiles:
    """Where one case's data is: ``images[m]`` holds modality ``MODALITIES[m]`` (channel ``channels[m]``
    of a 4-D file, or the whole file when None); ``seg`` is None when the case has no segmentation."""

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
    def sources(self) -> tuple:
        """Every file the case reads (images once each, then the segmentation if any)."""
        return tuple(dict.fromkeys(self.images)) + ((self.seg,) if self.seg else ())


def get_layout(name: str) -> Layout:
    """The table of layout ``name``; an unknown name raises naming the known ones."""
    if name not in LAYOUTS:
        raise DataError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def case_paths(layout: Layout, root: Path, case_id: str) -> tuple:
    """``(image file of each modality in MODALITIES order, segmentation file)`` of case ``case_id`` of a
    dataset folder ``root`` in ``layout`` (an MSD task folder for ``msd``: its training files)."""
    if layout.is_folder_per_case:
        stem = root / case_id / f"{case_id}{layout.separator}"
        return tuple(Path(f"{stem}{layout.files[m]}{NIFTI}") for m in MODALITIES), Path(f"{stem}seg{NIFTI}")
    return (root / "imagesTr" / f"{case_id}{NIFTI}",) * len(MODALITIES), root / "labelsTr" / f"{case_id}{NIFTI}"


def folder_case(folder: Path, layout: Layout) -> CaseFiles:
    """The ``CaseFiles`` of a case folder ``<ID>/`` of a folder-per-case layout."""
    images, seg = case_paths(layout, folder.parent, folder.name)
    return CaseFiles(folder.name, layout.name, images, (None,) * len(MODALITIES), seg if seg.is_file() else None)


def folder_kind(folder: Path) -> str | None:
    """Which folder-per-case layout names the files of ``folder`` (``brats2021``, ``brats2023``), or None."""
    for name in ("brats2021", "brats2023"):
        layout = LAYOUTS[name]
        tokens = list(layout.files.values()) + ["seg"]
        if any((folder / f"{folder.name}{layout.separator}{t}{NIFTI}").is_file() for t in tokens):
            return name
    return None


def _visible_niftis(folder: Path) -> list:
    return sorted(p for p in folder.glob(f"*{NIFTI}") if not p.name.startswith("."))  # skips macOS "._" files


def _msd_images(root: Path) -> Path | None:
    """The images folder (imagesTr, or the imagesTs given) when ``root`` is an MSD task folder or its imagesTr/imagesTs."""
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
    """The ``CaseFiles`` of an MSD task's ``images`` folder (imagesTr or imagesTs: 4-D files), labels from ``labelsTr``."""
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
                (path,) * len(MODALITIES),
                tuple(layout.channels[m] for m in MODALITIES),
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
        parts.append(
            f"{len(loose)} NIfTI file{'s' if len(loose) > 1 else ''} directly in the folder ({', '.join(p.name for p in loose[:3])}{', ...' if len(loose) > 3 else ''})"
        )
    return (", ".join(parts) or "no NIfTI files or case folders") + _uncompressed_hint([root, *found.get(None, [])])


def _resolve(kind: str, forced: str | None, prefer: str | None, root: Path) -> Layout:
    candidates = SHARED_FILE_NAMES.get(kind, (kind,))
    if forced is not None:
        get_layout(forced)
        if forced not in candidates:
            raise DataError(
                f"--layout {forced} expects {LAYOUTS[forced].expects}, but {root} holds {kind} files "
                f"({LAYOUTS[kind].expects}); pass --layout {' or '.join(candidates)}, or none to detect it"
            )
        return LAYOUTS[forced]
    return LAYOUTS[prefer if prefer in candidates else candidates[0]]


def find_cases(root, *, layout: str | None = None, prefer: str | None = None) -> list:
    """The cases under ``root`` (a case folder, a folder of case folders, an MSD task or its imagesTr/imagesTs).

    The layout is detected from the file names; ``layout`` forces one; ``prefer`` chooses among
    layouts sharing file names (brats2023/brats2024). Mixed or unknown folders raise ``DataError``
    listing what was found and what each layout expects.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"input folder does not exist: {root}")
    found = _survey(root)
    kinds = list(found)
    if len(kinds) != 1 or kinds[0] is None:
        what = "mixes layouts" if len(kinds) > 1 else "matches no layout"
        raise DataError(f"{root} {what}: found {_describe(found, root)}; expected one of: {_expectations()}")
    chosen = _resolve(kinds[0], layout, prefer, root)
    if kinds[0] == "msd":
        cases = msd_cases(found["msd"][0])
    else:
        cases = [folder_case(folder, chosen) for folder in found[kinds[0]]]
    if not cases:
        raise DataError(f"no {chosen.name} cases in {root}: found {_describe(found, root)}; expected {chosen.expects}")
    return [CaseFiles(c.case_id, chosen.name, c.images, c.channels, c.seg) for c in cases]


def likely_layouts(values, current: str) -> str:
    """A hint for a segmentation whose label ``values`` do not fit layout ``current``'s scheme."""
    fits = [n for n, lay in LAYOUTS.items() if n != current and set(values) <= set(lay.scheme.values)]
    same_names = [n for n in fits if LAYOUTS[n].files is not None and LAYOUTS[n].files == LAYOUTS[current].files]
    if same_names:
        return f"likely layout: {same_names[0]}, which has the same file names (pass --layout {same_names[0]})"
    if fits:
        return (
            f"the values fit {' or '.join(fits)}: segmentations of another release under {current} file names? "
            f"convert the labels to {LAYOUTS[current].scheme.describe()}"
        )
    return "no known layout uses these values: is this a segmentation file?"


def segmentation_classes(seg, path, layout: str):
    """Label values read from ``path`` (a segmentation of ``layout``) -> class indices ``uint8``.

    A value outside the layout's scheme raises ``DataError`` naming the file, the value and the likely layout.
    """
    try:
        return LAYOUTS[layout].scheme.to_classes(seg)
    except ValueError as err:
        raise DataError(f"{path}: {err}; {likely_layouts(np.unique(seg).tolist(), layout)}") from err
