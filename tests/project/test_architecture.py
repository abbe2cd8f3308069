"""docs/architecture.md tells the truth about the code: its module trees and ``git ls-files`` agree.

Product modules are every tracked ``*.py`` under ``cga_model/`` and ``cga_kernels/`` except ``__init__.py``
(a package is shown as its folder). The trees are the ```text blocks of the page whose first line is
``cga_model/`` or ``cga_kernels/``; each entry follows a branch mark (``├── `` or ``└── ``), its depth given by
the column of the mark, folders ending in ``/``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
PACKAGES = ("cga_model", "cga_kernels")
TREE = re.compile(r"^```text\n(.*?)^```", re.S | re.M)
ENTRY = re.compile(r"^(?P<indent>[│ ]*)[├└]── (?P<name>\S+)")


def tree_paths(tree: str) -> set[str]:
    """The file paths a tree names, e.g. ``cga_model/data/cases.py``; folders only as parts of paths."""
    lines = tree.splitlines()
    folders = [lines[0].strip().rstrip("/")]
    paths = set()
    for line in lines[1:]:
        match = ENTRY.match(line)
        if match is None:  # the continuation of a description
            continue
        depth = len(match.group("indent")) // 4 + 1
        name = match.group("name")
        del folders[depth:]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            paths.add("/".join([*folders, name]))
    return paths


def documented_modules() -> set[str]:
    trees = [t for t in TREE.findall(PAGE.read_text()) if t.split("\n", 1)[0].strip().rstrip("/") in PACKAGES]
    assert {t.split("\n", 1)[0].strip().rstrip("/") for t in trees} == set(PACKAGES), "a tree per package"
    return set().union(*(tree_paths(t) for t in trees))


def product_modules() -> set[str]:
    listed = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True)
    return {p for p in listed.stdout.split() if p.endswith(".py") and not p.endswith("/__init__.py")}


def test_tree_parser_reads_depths_and_folders():
    tree = "\n".join(
        ["pkg/", "├── a.py   text", "│                 more text", "├── sub/", "│   ├── b.py", "│   └── deep/"]
        + ["│       └── c.py", "└── d.py"]
    )
    assert tree_paths(tree) == {"pkg/a.py", "pkg/sub/b.py", "pkg/sub/deep/c.py", "pkg/d.py"}


def test_every_listed_module_exists():
    missing = sorted(documented_modules() - product_modules())
    assert not missing, f"docs/architecture.md lists modules that git does not track: {missing}"


def test_every_product_module_is_listed():
    unlisted = sorted(product_modules() - documented_modules())
    assert not unlisted, f"docs/architecture.md does not list these product modules: {unlisted}"
