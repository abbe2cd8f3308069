"""Test configuration shared by every test module.

``TRITON_INTERPRET`` must be set before ``triton`` is first imported, so it is set here, at
the very top, before anything imports ``cga_kernels``.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "build", "inductor-cache")
)

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
