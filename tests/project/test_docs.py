"""The examples of README.md and of every docs/*.md page run, so the documentation cannot drift from the code.

Every fenced block of those pages is collected, whatever section it is in:
- ```python blocks are executed, each in a fresh namespace in a temporary folder;
- ```bash blocks: every ``cga ...`` command (also ``python -m cga_model ...`` and ``torchrun ...
  -m cga_model ...``) is parsed by the real ``cga`` argument parser, every ``make X`` must name a
  Makefile target and every ``python -m X`` an importable module. A bash block preceded by the
  line ``<!-- readme-test: run -->`` is also run for real, command by command, in one folder.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cga_model.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
RUN_MARKER = "<!-- readme-test: run -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list:
    """``(code, run, page)`` of each ```kind block of every page, id = page, section heading and fence line."""
    found = []
    for page in PAGES:
        found += page_blocks(page, kind)
    return found


def page_blocks(page: Path, kind: str) -> list:
    """``(code, run, page)`` of each ```kind block of one page."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) != kind:
            continue
        before = text[: match.start()]
        line = before.count("\n") + 1
        heading = re.findall(r"^#+ (.+)$", before, re.M)
        section = re.sub(r"\W+", "-", heading[-1] if heading else "top").strip("-").lower()
        code = "\n" * line + match.group(2)  # padded so that tracebacks give the page's line numbers
        run = before.rstrip().endswith(RUN_MARKER)
        found.append(pytest.param(code, run, page, id=f"{page.relative_to(ROOT)}:{section}:{line}"))
    return found


def commands(code: str) -> list[list[str]]:
    """Shell command lines of a block: continuations joined, comments dropped, split like the shell."""
    joined = re.sub(r"\\\n", " ", code)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def cga_arguments(argv: list[str]):
    """The arguments after ``cga`` / ``-m cga_model`` in a command line, or None when it is no cga command."""
    if argv[0] == "cga":
        return argv[1:]
    if "-m" in argv and argv[argv.index("-m") + 1] == "cga_model":
        return argv[argv.index("-m") + 2 :]
    return None


def make_targets() -> set:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def check_command(argv: list[str]) -> None:
    """Parse a cga command with the real parser; check make targets and ``python -m`` modules exist."""
    args = cga_arguments(argv)
    if args is not None:
        if args in (["--version"], ["--help"]) or args[-1:] == ["--help"]:
            return
        try:
            build_parser().parse_args(args)
        except SystemExit as exit_:  # argparse exits on a flag or value it does not accept
            pytest.fail(f"docs: `{' '.join(argv)}` is not accepted by the cga parser (exit {exit_.code})")
    elif argv[0] == "make":
        assert set(argv[1:]) <= make_targets(), f"docs: `{' '.join(argv)}` names no Makefile target"
    elif "-m" in argv and argv[0].endswith(("python", "python3")):
        module = argv[argv.index("-m") + 1]
        assert importlib.util.find_spec(module) is not None, f"docs: `{' '.join(argv)}`: no module {module}"


@pytest.mark.parametrize("code, run, page", blocks("python"))
def test_python_example_runs(code, run, page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(page), "exec"), {"__name__": "docs_example"})


@pytest.mark.parametrize("code, run, page", blocks("bash"))
def test_shell_example_parses_and_quick_ones_run(code, run, page, tmp_path):
    lines = commands(code)
    for argv in lines:
        check_command(argv)
    if not run:
        return
    for argv in lines:
        args = cga_arguments(argv)
        assert args is not None, f"docs: only cga commands may be marked to run, got `{' '.join(argv)}`"
        done = subprocess.run(
            [sys.executable, "-m", "cga_model", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"docs: `{' '.join(argv)}` failed:\n{done.stderr[-2000:]}"


def test_readme_has_examples_of_each_kind():
    readme_python = page_blocks(README, "python")
    assert len(readme_python) >= 1 and any(p.values[1] for p in page_blocks(README, "bash"))
    assert len(blocks("python")) >= 3


def test_every_fenced_block_is_collected():
    """A block of another kind (```sh, ```console) would escape the tests; bare ``` blocks are trees."""
    for page in PAGES:
        kinds = {match.group(1) for match in FENCE.finditer(page.read_text())}
        assert kinds <= {"python", "bash", "mermaid", "text", ""}, f"{page.name}: fenced blocks of kind {kinds}"


def test_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 200


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_point_to_files(page):
    """Every ``[text](path)`` and ``![alt](path)`` that is not a URL names a file of the repository."""
    targets = [t for t in LINK.findall(page.read_text()) if "://" not in t]
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, f"{page.name}: links to missing files {missing}"


def test_docs_cite_nothing_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert "DESIGN.md" not in text and "../shared" not in text, f"{page.name} cites a file outside the repository"


TEST_PATH = re.compile(r"\btests/[\w/<>]+\.py\b")


def test_quoted_test_files_exist():
    """A test file a page names (``tests/kernels/test_pool.py``; ``<op>`` stands for each op) exists."""
    ops = ("pool", "scatter", "intra_update", "distances")
    for page in PAGES:
        for quoted in set(TEST_PATH.findall(page.read_text())):
            paths = [quoted.replace("<op>", op) for op in ops] if "<op>" in quoted else [quoted]
            missing = [p for p in paths if not (ROOT / p).exists()]
            assert not missing, f"{page.name} names test files that do not exist: {missing}"
