"""The brain's bounding box (data/brain.py), shared by the cache and whole-volume segmentation."""

import numpy as np

from cga_model.data.brain import brain_box


def test_brain_box_of_an_empty_volume_is_the_whole_volume():
    assert brain_box(np.zeros((5, 6, 7), dtype=bool)) == ((0, 5), (0, 6), (0, 7))
    mask = np.zeros((5, 6, 7), dtype=bool)
    mask[1, 2, 3] = mask[3, 4, 3] = True
    assert brain_box(mask) == ((1, 4), (2, 5), (3, 4))
