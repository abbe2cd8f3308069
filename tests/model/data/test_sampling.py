"""Crop sampling: window bounds, foreground share of each batch, class choice, per-sample seeds and workers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cga_model.data.cache import CaseArrays, class_locations
from cga_model.data.loader import TrainingCrops, make_loader
from cga_model.data.sampling import CropBatchSampler, crop_start, foreground_voxel, read_window

CROP = (16, 16, 16)


class TinyTumourCases:
    """Cases of 64x48x40 with one 2x2x2 enhancing tumour (class 3) and a 1-voxel necrosis (class 1) in a
    corner: a uniform crop rarely holds tumour, a foreground crop always does."""

    def __init__(self, n: int = 12):
        rng = np.random.default_rng(0)
        self.case_ids = [f"C{i}" for i in range(n)]
        self.data = {}
        for i, case_id in enumerate(self.case_ids):
            image = rng.standard_normal((4, 64, 48, 40)).astype(np.float32)
            classes = np.zeros((64, 48, 40), dtype=np.uint8)
            classes[60:62, 44:46, 36:38] = 3
            classes[59, 43, 35] = 1
            self.data[case_id] = CaseArrays(
                case_id, image, classes, class_locations(classes, i), ((0, 64), (0, 48), (0, 40)), (64, 48, 40)
            )

    def arrays(self, case_id):
        return self.data[case_id]


def test_crop_start_bounds_and_centre():
    rng = np.random.default_rng(0)
    starts = np.array([crop_start((40, 20, 16), (16, 16, 16), rng) for _ in range(2000)])
    assert starts[:, 0].min() == 0 and starts[:, 0].max() == 24  # uniform over every position inside the array
    assert starts[:, 1].min() == 0 and starts[:, 1].max() == 4
    assert (starts[:, 2] == 0).all()
    assert crop_start((40, 20, 10), (16, 16, 16), rng, center=(20, 10, 5)) == (12, 2, -3)  # centred (z: within [-6, 0])
    assert crop_start((40, 20, 16), (16, 16, 16), rng, center=(39, 0, 8)) == (24, 0, 0)
    small = np.array([crop_start((10, 10, 10), (16, 16, 16), rng) for _ in range(500)])
    assert small.min() == -6 and small.max() == 0  # a small array lands anywhere inside the window


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(1, 24)), min_size=3, max_size=3),
    st.integers(0, 2**32 - 1),
    st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_window_holds_its_centre_and_matches_padded_slicing(axes, seed, flips):
    shape, crop = [s for s, _ in axes], [c for _, c in axes]
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((2, *shape)).astype(np.float32)
    classes = rng.integers(0, 4, shape).astype(np.uint8)
    center = [int(rng.integers(0, s)) for s in shape]
    start = crop_start(shape, crop, rng, center=center)
    for c, a, w in zip(center, start, crop):
        assert a <= c < a + w
    got_image, got_classes = read_window(image, classes, start, crop, flips)
    pad = [(w, w) for w in crop]
    window = tuple(slice(a + w, a + 2 * w) for a, w in zip(start, crop))
    axes = tuple(a for a in range(3) if flips[a])
    expected_image = np.flip(np.pad(image, [(0, 0)] + pad)[(slice(None),) + window], tuple(a + 1 for a in axes))
    np.testing.assert_array_equal(got_image, expected_image)
    np.testing.assert_array_equal(got_classes, np.flip(np.pad(classes, pad)[window], axes))


def test_read_window_indexes_only_the_window():
    class Recording(np.ndarray):
        keys = []

        def __getitem__(self, key):
            Recording.keys.append(key)
            return np.asarray(super().__getitem__(key))

    image = np.zeros((4, 60, 60, 60), dtype=np.float32).view(Recording)
    read_window(image, np.zeros((60, 60, 60), np.uint8), (10, 50, -4), (16, 16, 16))
    (key,) = Recording.keys
    assert key[1:] == (slice(10, 26), slice(50, 60), slice(0, 12))


def test_foreground_class_is_chosen_uniformly_among_present_classes():
    locations = np.array([[1, i, 0, 0] for i in range(1000)] + [[3, i, 1, 1] for i in range(10)], dtype=np.int32)
    rng = np.random.default_rng(1)
    picked = np.array([foreground_voxel(locations, rng)[1] for _ in range(4000)])  # y is 0 for class 1, 1 for class 3
    assert abs(picked.mean() - 0.5) < 0.04
    assert foreground_voxel(np.zeros((0, 4), np.int32), rng) is None


@pytest.mark.parametrize(
    "batch_size, share", [(8, 1 / 3), (6, 1 / 3), (2, 1 / 3), (1, 1 / 3), (4, 0.0), (4, 1.0), (5, 0.5)]
)
def test_batch_sampler_foreground_share(batch_size, share):
    sampler = CropBatchSampler(cases=48, batch_size=batch_size, foreground_share=share, seed=3)
    flags = []
    for epoch in range(25):
        sampler.set_epoch(epoch)
        for batch in sampler:
            count = sum(fg for _, fg, _ in batch)
            expected = len(batch) * share
            assert count in (int(expected), int(np.ceil(expected)))  # the share rounded down or up
            flags += [fg for _, fg, _ in batch]
    assert abs(np.mean(flags) - share) < 0.03


def test_batch_sampler_epochs_and_ranks():
    sampler = CropBatchSampler(cases=10, batch_size=3, seed=1)
    first = list(sampler)
    assert sorted(i for batch in first for i, _, _ in batch) == list(range(10)) and len(first) == len(sampler) == 4
    assert list(sampler) == first  # the same epoch repeats exactly
    sampler.set_epoch(1)
    assert list(sampler) != first
    ranks = [list(CropBatchSampler(cases=10, batch_size=3, seed=1, rank=r, world=3)) for r in range(3)]
    cases = [i for batches in ranks for batch in batches for i, _, _ in batch]
    seeds = [s for batches in ranks for batch in batches for _, _, s in batch]
    assert len(cases) == 12 and set(cases) == set(range(10)) and len(set(seeds)) == 12
    with pytest.raises(ValueError, match="foreground share"):
        CropBatchSampler(cases=4, batch_size=2, foreground_share=1.5)


def test_training_batches_hold_tumour_at_the_foreground_share():
    cases = TinyTumourCases()
    dataset = TrainingCrops(cases, cases.case_ids, CROP, augment=True)
    sampler = CropBatchSampler(cases=len(dataset), batch_size=3, foreground_share=1 / 3, seed=0)
    with_tumour, total = 0, 0
    for epoch in range(6):
        sampler.set_epoch(epoch)
        for batch in make_loader(dataset, sampler, workers=0):
            with_tumour += int((batch["labels"].flatten(1) > 0).any(1).sum())
            total += len(batch["labels"])
    # a uniform 16^3 crop of 64x48x40 holds the corner tumour with probability < 3 %; foreground crops always do
    assert 1 / 3 <= with_tumour / total < 1 / 3 + 0.05


def test_samples_do_not_depend_on_the_number_of_workers():
    cases = TinyTumourCases(n=6)
    dataset = TrainingCrops(cases, cases.case_ids, CROP, augment=True)
    batches = {}
    for workers in (0, 2):
        sampler = CropBatchSampler(cases=len(dataset), batch_size=2, seed=5)
        loader = make_loader(dataset, sampler, workers=workers)
        batches[workers] = []
        for epoch in range(2):  # persistent workers across epochs
            sampler.set_epoch(epoch)
            batches[workers] += [(b["image"], b["labels"], b["case_id"]) for b in loader]
    for (a_image, a_labels, a_ids), (b_image, b_labels, b_ids) in zip(batches[0], batches[2], strict=True):
        assert a_ids == b_ids and torch.equal(a_image, b_image) and torch.equal(a_labels, b_labels)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_leaves_the_global_rng_alone(workers):
    """Starting an epoch must not draw from torch's global RNG (dropout): else a resumed run, which starts
    its loader where an uninterrupted run reuses persistent workers, would end with other weights."""
    cases = TinyTumourCases(n=4)
    sampler = CropBatchSampler(cases=4, batch_size=2, seed=0)
    loader = make_loader(TrainingCrops(cases, cases.case_ids, CROP), sampler, workers=workers)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for _ in loader:
            pass
    assert torch.equal(torch.get_rng_state(), state)
