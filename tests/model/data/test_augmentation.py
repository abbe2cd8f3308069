"""Sequence dropout: its rate, never every sequence, one draw per seed, a no-op at 0, and the training samples
it makes (a dropped sequence is 0 after the intensity jitter, as a missing one is at prediction)."""

import numpy as np
import pytest
import torch

from cga_model.data.augmentation import draw_sequence_dropout
from cga_model.data.loader import TrainingCrops, open_cases, training_batch

CROP = (16, 16, 16)


@pytest.fixture(scope="module")
def cases(cohort):
    return open_cases(cohort)


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.9])
def test_each_sequence_is_dropped_at_the_rate_and_never_all(rate):
    rng = np.random.default_rng(0)
    keeps = np.stack([draw_sequence_dropout(rng, 4, rate) for _ in range(4000)])
    assert keeps.any(axis=1).all()  # at least one sequence kept in every sample
    expected = rate - rate**4 / 4  # when all four are drawn, one of them is kept
    assert abs((~keeps).mean() - expected) < 0.02


def test_one_draw_per_seed_and_rate_zero_draws_nothing():
    for seed in range(20):
        first = draw_sequence_dropout(np.random.default_rng(seed), 4, 0.5)
        assert np.array_equal(first, draw_sequence_dropout(np.random.default_rng(seed), 4, 0.5))
    rng = np.random.default_rng(7)
    assert draw_sequence_dropout(rng, 4, 0.0).all()
    assert rng.random() == np.random.default_rng(7).random()  # the rng is untouched: other draws stay as they were
    assert draw_sequence_dropout(np.random.default_rng(0), 1, 0.99).all()  # a single sequence is always kept


def test_rate_zero_samples_are_those_without_dropout(cases):
    plain = TrainingCrops(cases, cases.case_ids, CROP)
    zero = TrainingCrops(cases, cases.case_ids, CROP, sequence_dropout=0.0)
    for key in [(0, True, 1), (1, False, 2)]:
        a, b = plain[key], zero[key]
        for name in ("image", "labels", "scale", "shift"):
            assert torch.equal(a[name], b[name]), name


def test_dropped_sequences_are_zero_in_the_network_input(cases):
    dataset = TrainingCrops(cases, cases.case_ids, CROP, sequence_dropout=0.5)
    plain = TrainingCrops(cases, cases.case_ids, CROP)
    dropped_any = False
    for seed in range(12):
        key = (seed % 2, bool(seed % 3), seed)
        batch = dataset.__getitems__([key])
        image, labels = training_batch(batch, "cpu")
        dropped = (batch["scale"][0] == 0) & (batch["shift"][0] == 0)
        assert not dropped.all() and torch.equal(image[0, dropped], torch.zeros_like(image[0, dropped]))
        reference = plain[key]
        assert torch.equal(labels[0].to(torch.uint8), reference["labels"])  # same crop and flips
        assert torch.equal(batch["image"][0, ~dropped], reference["image"][~dropped])
        again = dataset[key]  # deterministic from the sample's seed
        assert torch.equal(again["image"], batch["image"][0]) and torch.equal(again["scale"], batch["scale"][0])
        dropped_any |= bool(dropped.any())
    assert dropped_any
