"""Test configuration and the fixtures shared by every test module.

``TRITON_INTERPRET`` must be set before ``triton`` is first imported, so it is set here, at
the very top, before anything imports ``cga_kernels``.

The shared data, built once a session and read only by convention (a test that alters cases
takes ``cohort_copy``): ``cohort``, a tiny raw BraTS 2021 cohort, and ``trained_run``, a
finished one-epoch ``cga train`` run on it.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault(
    "TORCHINDUCTOR_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "build", "inductor-cache")
)

import resource  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

FILE_SIZE_LIMIT = resource.getrlimit(resource.RLIMIT_FSIZE)  # the session's, before any test stands for a full disk


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A file-size limit a test sets (a full disk) ends with its call, pass or fail: pytest then writes the
    test's report, to a log file perhaps, which the limit would refuse."""
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT)


#: The flags ``trained_run`` was trained with (besides --data, --out, --epochs 1): a base-4 network on 16^3
#: crops, one sample a step, no validation, no loader workers. ``--resume`` of that run takes the same flags.
TRAINED_RUN_FLAGS = (
    "--val-fraction", "0", "--crop", "16", "16", "16", "--batch-size", "1", "--base-channels", "4", "--workers", "0",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """A tiny raw BraTS 2021 cohort (4 cases of 24x24x16, seed 9), read only: tests that alter cases copy it."""
    from cga_model.data.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("cohort")
    synthesize_cohort(root, cases=4, seed=9, shape=(24, 24, 16), progress=False)
    return root


@pytest.fixture
def cohort_copy(cohort, tmp_path) -> Path:
    """A fresh copy of ``cohort`` at ``tmp_path / "data"``, free to alter."""
    return Path(shutil.copytree(cohort, tmp_path / "data"))


@pytest.fixture(scope="session")
def trained_run_flags() -> tuple:
    """``TRAINED_RUN_FLAGS``, for the tests that train or resume as ``trained_run`` was trained."""
    return TRAINED_RUN_FLAGS


@pytest.fixture(scope="session")
def trained_run(cohort, tmp_path_factory) -> Path:
    """A finished one-epoch ``cga train`` run on ``cohort`` with ``TRAINED_RUN_FLAGS`` (last.pt, best.pt,
    metrics.jsonl, curves.png), read only: tests that alter it copy its files first."""
    from cga_model.cli import main as cga

    out = tmp_path_factory.mktemp("trained_run")
    assert cga(["train", "--data", str(cohort), "--out", str(out), "--epochs", "1", *TRAINED_RUN_FLAGS]) == 0
    return out
