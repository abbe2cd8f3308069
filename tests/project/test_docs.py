"""The code blocks of README.md and of every docs/*.md page run, so the documentation cannot drift from the code.

Every fenced block of those pages is collected, whatever section it is in. One rule for all: a
```python or ```bash block runs, unless the line before its fence is ``<!-- not run: REASON -->``.
- The ```python blocks of a page run in order in one namespace, in a temporary folder.
- The ```bash blocks that run are run command by command in a temporary folder each; they may hold
  only ``cga`` commands.
- Every command of every ```bash block, run or not, is checked: a ``cga ...`` command (also
  ``python -m cga_model ...`` and ``torchrun ... -m cga_model ...``) is parsed by the real ``cga``
  argument parser, every ``make X`` must name a Makefile target and every ``python -m X`` an
  importable module; ``cga <command> --help`` of every command the pages name prints its help.
- Bare and ```text blocks are file trees; ```mermaid blocks are diagrams. No other kind is allowed.
Each page's run tests count the blocks they ran against the blocks of the page left unmarked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
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
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: (.*?) -->\s*$")
PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]


def page_blocks(page: Path, kind: str) -> list[tuple[str, str | None, str]]:
    """``(code, reason not run or None, id)`` of each ```kind block of one page; id = page, section, fence line.

    ``code`` is padded with newlines so that tracebacks give the page's line numbers.
    """
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) != kind:
            continue
        before = text[: match.start()]
        line = before.count("\n") + 1
        heading = re.findall(r"^#+ (.+)$", before, re.M)
        section = re.sub(r"\W+", "-", heading[-1] if heading else "top").strip("-").lower()
        marker = NOT_RUN.search(before.rstrip().splitlines()[-1] if before.strip() else "")
        found.append(
            ("\n" * line + match.group(2), marker and marker.group(1).strip(), f"{page.name}:{section}:{line}")
        )
    return found


def blocks(kind: str) -> list:
    """pytest params ``(code, reason)`` of every ```kind block of every page."""
    return [pytest.param(code, reason, id=id_) for page in PAGES for code, reason, id_ in page_blocks(page, kind)]


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


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_python_blocks_of_the_page_run(page, tmp_path, monkeypatch):
    """The unmarked ```python blocks of one page, in order, in one namespace (a block may use earlier names)."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_example"}
    ran = 0
    for code, reason, _ in page_blocks(page, "python"):
        if reason is None:
            exec(compile(code, str(page), "exec"), namespace)
            ran += 1
    assert ran == unmarked_fences(page, "python")


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_shell_blocks_of_the_page_run(page, tmp_path):
    """Each unmarked ```bash block of one page runs for real, command by command, in a folder of its own."""
    ran = 0
    for number, (code, reason, id_) in enumerate(page_blocks(page, "bash")):
        if reason is not None:
            continue
        folder = tmp_path / str(number)
        folder.mkdir()
        for argv in commands(code):
            args = cga_arguments(argv)
            assert args is not None, f"{id_}: only cga commands can run, got `{' '.join(argv)}`: mark it not run"
            done = subprocess.run(
                [sys.executable, "-m", "cga_model", *args], cwd=folder, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, f"{id_}: `{' '.join(argv)}` failed:\n{done.stderr[-2000:]}"
        ran += 1
    assert ran == unmarked_fences(page, "bash")


def unmarked_fences(page: Path, kind: str) -> int:
    """Opening fences of ```kind on the page, counted line by line, less those whose previous line says not run."""
    lines = page.read_text().splitlines()
    opening = [i for i, line in enumerate(lines) if line == f"```{kind}"]
    previous = [next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "") for i in opening]
    return sum(not NOT_RUN.search(line) for line in previous)


@pytest.mark.parametrize("code, reason", blocks("bash"))
def test_every_shell_command_is_accepted(code, reason):
    for argv in commands(code):
        check_command(argv)


def documented_commands() -> list[str]:
    """The ``cga`` subcommands named by the ```bash blocks of all pages, sorted."""
    named = set()
    for page in PAGES:
        for code, _, _ in page_blocks(page, "bash"):
            for argv in commands(code):
                args = cga_arguments(argv)
                if args and not args[0].startswith("-"):
                    named.add(args[0])
    return sorted(named)


@pytest.mark.parametrize("command", documented_commands())
def test_help_of_every_documented_command(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0 and out.getvalue().startswith(f"usage: cga {command}"), out.getvalue()[:500]


def test_not_run_markers_give_a_reason_and_stand_before_a_block():
    for page in PAGES:
        text = page.read_text()
        markers = re.findall(r"^\s*<!-- not run:(.*?)-->", text, re.M)  # a marker alone on its line
        marked = [b for kind in ("python", "bash") for b in page_blocks(page, kind) if b[1] is not None]
        assert all(m.strip() for m in markers), f"{page.name}: a not-run marker without a reason"
        assert len(markers) == len(marked), f"{page.name}: a not-run marker that is not right before a block"


def test_readme_has_examples_of_each_kind():
    assert any(reason is None for _, reason, _ in page_blocks(README, "python"))
    assert any(reason is None for _, reason, _ in page_blocks(README, "bash"))
    assert len(blocks("python")) >= 3


TREE_LINE = re.compile(r"^([\w./-]+/|[│├└ ].*)$")


def test_every_fenced_block_is_collected():
    """A block of another kind (```sh, ```console) would escape the tests; bare and ```text blocks are file trees."""
    for page in PAGES:
        for match in FENCE.finditer(page.read_text()):
            kind, lines = match.group(1), match.group(2).splitlines()
            assert kind in {"python", "bash", "mermaid", "text", ""}, f"{page.name}: a fenced block of kind {kind}"
            if kind in {"text", ""}:
                stray = [line for line in lines if not TREE_LINE.match(line)]
                assert lines[0].endswith("/") and not stray, f"{page.name}: a ```{kind} block that is no tree: {stray}"


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
