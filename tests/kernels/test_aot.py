"""Ahead-of-time GPU compile check of the Triton kernels (``python -m cga_kernels.triton.aot``).

Everything runs in subprocesses without ``TRITON_INTERPRET``: this test session imports triton
in interpreter mode (tests/conftest.py), where kernels cannot be compiled for a GPU. Results
are cached under ``build/aot/``.
"""

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys

import pytest

from cga_kernels.triton import aot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}


def _python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def _jit_kernels() -> set[str]:
    """Names of every ``@triton.jit`` kernel (not helper) defined in any module of cga_kernels.triton."""
    import cga_kernels.triton as package

    modules = [importlib.import_module(f"cga_kernels.triton.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    return {
        name
        for module in modules
        for name, obj in inspect.getmembers(module)
        if name.endswith("_kernel") and getattr(getattr(obj, "fn", None), "__module__", None) == module.__name__
    }


def test_problems_flags_spills_shared_memory_and_errors():
    ok = {"registers": 80, "spills": 0, "shared": 1024, "shared_limit": 166912}
    assert aot.problems(ok) == []
    assert "spills" in aot.problems(ok | {"spills": 8})[0]
    assert "shared memory" in aot.problems(ok | {"shared": 200000})[0]
    assert aot.problems({"error": "CompilationError: boom", "shared_limit": 1}) == ["CompilationError: boom"]


def test_tile_representatives_cover_every_tile_choice():
    out = _python(
        "import json; from cga_kernels.triton import aot, _tiles as t\n"
        "reps = aot.tile_representatives()\n"
        "chosen = {str((t.class_pad(k), t.tile_sizes(c, n))) for k, c, n in reps}\n"
        "every = {str((t.class_pad(k), t.tile_sizes(c, n))) for k in range(1, 65)"
        " for c in (1, 16, 17, 33, 64, 100, 512) for n in (1, 16, 4096, 2**24)}\n"
        "print(json.dumps(sorted(every - chosen)))"
    )
    assert json.loads(out) == []


def test_recorder_sees_a_launch_with_its_signature_and_constexprs():
    out = _python(
        "import json, torch; from cga_kernels.triton import aot, KERNELS\n"
        "found = set()\n"
        "x = torch.empty(2, 40, 300, dtype=torch.bfloat16, device='meta')\n"
        "labels = torch.empty(2, 300, dtype=torch.int64, device='meta')\n"
        "with aot.recording(found):\n"
        "    KERNELS['pool_hard'](x, labels, 33)\n"
        "print(json.dumps([[s.kernel, dict(s.signature)['x_ptr'], dict(s.constants)['K_PAD']] for s in found]))"
    )
    assert json.loads(out) == [["_masked_sums_kernel", "*bf16", 64]]


@pytest.mark.slow
def test_aot_compiles_every_specialisation_for_a100_and_h100_without_spills():
    run = subprocess.run(
        [sys.executable, "-m", "cga_kernels.triton.aot", "--targets", "sm_80,sm_90"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    with open(os.path.join(ROOT, "build", "aot", "report.json")) as fh:
        results = json.load(fh)
    assert {r["target"] for r in results} == {"sm_80", "sm_90"}
    assert {r["kernel"] for r in results} == _jit_kernels()
    assert all(r["spills"] == 0 and r["shared"] <= r["shared_limit"] for r in results)
    sums = [r for r in results if r["kernel"] == "_masked_sums_kernel"]
    assert {r["signature"]["x_ptr"] for r in sums} == {"*fp16", "*bf16", "*fp32", "*fp64"}
    assert {r["constants"]["ATOMIC"] for r in sums} == {"True", "False"}
    assert {r["constants"]["SOFT"] for r in sums} == {"True", "False"}
    assert {r["constants"]["K_PAD"] for r in sums} == {"16", "32", "64"}
    assert {r["constants"]["RESIDUAL"] for r in results if r["kernel"] == "_masked_broadcast_kernel"} == {
        "True",
        "False",
    }
    assert any(t == "i64" for r in results for t in r["signature"].values()), "no variant for B*C*N >= 2^31"
