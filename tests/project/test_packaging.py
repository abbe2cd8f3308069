"""The source distribution builds: its files, a wheel built from it, and that wheel's kernels imported.

``python -m build`` runs from outside the repository (the repository's ``build/`` folder would
shadow the ``build`` package); the wheel is built from the sdist alone and installed into a
folder of its own, imported with the repository out of the path.
"""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd, **env):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _tracked(pattern: str) -> set:
    return set(_run(["git", "ls-files", pattern], ROOT).split())


def test_sdist_holds_the_sources_and_builds_a_wheel_whose_kernels_load(tmp_path):
    _run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(ROOT)],
        tmp_path,
    )
    (sdist,) = (tmp_path / "dist").glob("cga_unet-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = (_tracked("csrc") | _tracked("cga_kernels/*.py") | _tracked("cga_model/*.py")) - names
    assert not missing, f"the sdist leaves out {sorted(missing)}"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", str(sdist), "-w", "wheel"],
        tmp_path,
    )
    (wheel,) = (tmp_path / "wheel").glob("cga_unet-*.whl")
    assert any(n.startswith("cga_kernels/_C") and n.endswith(".so") for n in zipfile.ZipFile(wheel).namelist())
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", "site", str(wheel)], tmp_path)
    script = (
        "import torch, cga_kernels as ck, cga_model\n"
        "assert 'site' in ck.__file__, ck.__file__\n"
        "x = torch.randn(1, 3, 4, 4); m = torch.randint(0, 2, (1, 4, 4))\n"
        "p, c = ck.prototype_pool(x, m, num_classes=2)\n"
        "print(tuple(p.shape), cga_model.__version__)\n"
        "from cga_model.cli import main\n"
        "main(['--version'])\n"
    )
    out = _run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, 'site')\n{script}"], tmp_path)
    assert out.split()[:3] == ["(1,", "2,", "3)"], out
    assert out.splitlines()[-1].startswith("cga "), out  # cga --version
