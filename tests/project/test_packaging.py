"""``python -m build`` makes an sdist that holds the sources, and, inside a fresh virtual environment
that has only torch, a wheel from that sdist, which installs there and runs.

``python -m build`` runs from outside the repository (the repository's ``build/`` folder would
shadow the ``build`` package). The environment is made by ``python -m venv --without-pip`` and
receives, before the sdist, only the pinned ``torch==2.13.0`` (with what torch itself requires)
and the build tools that ``python -m build --no-isolation`` needs inside it: build (with its own
requirements), setuptools, wheel and ninja. The test's own pip installs into it (``pip --python``),
with pip's cache and configuration as they are (so torch comes from a local wheel where pip is set
up to find one) and without byte-compiling (``--no-compile``, the bulk of the time of a torch
install). The environment's ``python -m build --wheel`` compiles the unpacked sdist, and the wheel
is installed with its declared dependencies, so a dependency missing from pyproject.toml fails
here. Then the environment's own ``cga --version`` runs, and one op on the compiled CPU kernels,
with the repository out of the path.
"""

import os
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("build", "setuptools", "wheel", "ninja")

pytestmark = pytest.mark.slow  # a torch install and a compile of the C++ kernels: ~100 s of CPU; runs in make test

# Run inside the new environment: the distributions that are neither torch, nor the build tools, nor what they require.
EXTRA_DISTRIBUTIONS = """
import importlib.metadata as md, re
def key(name): return re.sub(r"[-_.]+", "-", name).lower()
installed = {key(d.metadata["Name"]) for d in md.distributions()}
seen, todo = set(), ["torch", *tools]
while todo:
    name = todo.pop()
    if name in installed and name not in seen:
        seen.add(name)
        todo += [key(re.split(r"[ ;<>=!~\\[(]", r, maxsplit=1)[0]) for r in md.requires(name) or []]
print(md.version("torch"), *sorted(installed - seen))
"""

# Run inside the new environment after the install: one op on the compiled CPU kernels, checked against the oracle.
ONE_OP = """
import torch, cga_kernels as ck
assert ck.__file__.startswith(sys.prefix), ck.__file__
assert ck.backend()["cpu"] == "compiled", ck.backend()
x = torch.randn(2, 3, 5, 4, dtype=torch.float64); mask = torch.randint(0, 2, (2, 5, 4))
proto, counts = ck.prototype_pool(x, mask, num_classes=2)
ref_proto, ref_counts = ck.reference.prototype_pool(x, mask, num_classes=2)
torch.testing.assert_close(proto, ref_proto); torch.testing.assert_close(counts, ref_counts)
print(tuple(proto.shape), ck.backend()["cpu_library"])
"""


def _run(args, cwd) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def _tracked(pattern: str) -> set:
    return set(_run(["git", "ls-files", pattern], ROOT).split())


def _sdist(tmp_path: Path) -> Path:
    """Build the sdist and check that it holds every tracked source file the build and the packages need."""
    _run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(ROOT)],
        tmp_path,
    )
    (sdist,) = (tmp_path / "dist").glob("cga_unet-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = (_tracked("csrc") | _tracked("cga_kernels/*.py") | _tracked("cga_model/*.py")) - names
    assert not missing, f"the sdist leaves out {sorted(missing)}"
    return sdist


def _wheel_in_venv(python: Path, sdist: Path, tmp_path: Path) -> Path:
    """The wheel that the environment's ``python -m build`` makes from the unpacked sdist."""
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (source,) = (tmp_path / "unpacked").iterdir()
    wheels = tmp_path / "wheels"
    _run([python, "-I", "-m", "build", "--wheel", "--no-isolation", "--outdir", str(wheels), str(source)], tmp_path)
    (wheel,) = wheels.glob("cga_unet-*.whl")
    return wheel


def test_build_makes_an_sdist_and_a_wheel_that_installs_into_a_fresh_venv_with_only_torch(tmp_path):
    sdist = _sdist(tmp_path)
    _run([sys.executable, "-m", "venv", "--without-pip", "venv"], tmp_path)
    python = tmp_path / "venv" / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile"]
    _run([*pip, "torch==2.13.0", *BUILD_TOOLS], tmp_path)
    listing = f"tools = {set(BUILD_TOOLS)!r}\n{EXTRA_DISTRIBUTIONS}"
    torch_version, *extra = _run([python, "-I", "-c", listing], tmp_path).split()
    assert torch_version.startswith("2.13.0") and not extra, f"the venv holds more than torch: {torch_version} {extra}"
    _run([*pip, str(_wheel_in_venv(python, sdist, tmp_path))], tmp_path)
    version = _run([tmp_path / "venv" / "bin" / "cga", "--version"], tmp_path)  # the venv's own console script
    assert version.strip() == f"cga {installed_version('cga-unet')}", version
    out = _run([python, "-I", "-c", f"import sys\n{ONE_OP}"], tmp_path)
    shape, library = out.split(") ")
    assert shape + ")" == "(2, 2, 3)" and library.startswith(str(tmp_path / "venv")), out
    shutil.rmtree(tmp_path / "venv")  # 1 GB; pytest keeps the temporary folders of the last runs
