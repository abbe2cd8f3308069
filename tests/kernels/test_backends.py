"""``ck.backend()`` and the independence of the two implementations: the op schemas are defined
in Python, so the Triton kernels run without the compiled C++ library and the C++ kernels run
without Triton (each checked in a fresh interpreter with the other one taken away)."""

import json
import os
import subprocess
import sys

import cga_kernels as ck

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs the public ops on CPU tensors in a subprocess; prints backend() and what happened as JSON.
PROBE = """
import json, warnings, torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import cga_kernels as ck
from cga_kernels import reference as ref
x, labels = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
result = {"backend": ck.backend(), "warnings": [str(w.message) for w in caught]}
try:
    ck.intra_class_update(x, labels, 3)
    result["cpu"] = "ran"
except RuntimeError as err:
    result["cpu"] = str(err)
try:
    from cga_kernels import triton_ops as tri
    y, proto, counts = tri.intra_class_update(x, labels, 3)
    torch.testing.assert_close(y, ref.intra_class_update(x, labels, 3)[0])
    result["triton"] = "ran"
except ImportError as err:
    result["triton"] = str(err)
result["cuda_kernel"] = torch._C._dispatch_has_kernel_for_dispatch_key("cga::intra_update_hard", "CUDA")
print(json.dumps(result))
"""


def probe(prelude: str) -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run(
        [sys.executable, "-c", prelude + PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_backend_reports_compiled_cpu():
    info = ck.backend()
    assert info["cpu"] == "compiled"
    assert info["cpu_library"].endswith(".so")
    assert isinstance(info["cuda"], str) and info["cuda"]


def test_triton_runs_without_the_compiled_library():
    """A machine whose C++ build failed: loading the .so fails, the Triton kernels still serve."""
    hide_so = "import torch\ndef _fail(path): raise OSError('simulated failed build')\ntorch.ops.load_library = _fail\n"
    result = probe(hide_so)
    assert result["backend"]["cpu"].startswith("MISSING:") and "simulated failed build" in result["backend"]["cpu"]
    assert result["backend"]["cpu_library"] is None
    assert any("compiled CPU extension is MISSING" in w for w in result["warnings"])
    assert "cannot run cga::intra_update_hard: the compiled extension is missing" in result["cpu"]
    assert "pip install --no-build-isolation -e ." in result["cpu"]
    assert result["triton"] == "ran"
    assert result["cuda_kernel"] is True
    assert not result["backend"]["cuda"].startswith("unavailable: Triton kernels not importable")


def test_cpu_runs_without_triton():
    """A machine without Triton: the C++ kernels still serve, CUDA says why it cannot."""
    no_triton = "import sys\nsys.modules['triton'] = None\n"
    result = probe(no_triton)
    assert result["backend"]["cpu"] == "compiled"
    assert result["backend"]["cuda"].startswith("unavailable: Triton kernels not importable")
    assert result["cpu"] == "ran"
    assert "Triton kernels not importable" in result["triton"]
    assert result["cuda_kernel"] is True  # a stand-in that raises with the reason, not a silent fallback
