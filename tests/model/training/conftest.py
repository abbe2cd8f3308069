"""Fixtures shared by the training tests."""

import pytest

from cga_model.data.synth import synthesize_cohort


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """A tiny raw BraTS 2021 cohort (4 cases of 24x24x16), read only: tests that alter cases copy it first."""
    root = tmp_path_factory.mktemp("tiny")
    synthesize_cohort(root, cases=4, seed=9, shape=(24, 24, 16), progress=False)
    return root
