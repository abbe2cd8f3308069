"""Whole-volume segmentation (nn/sliding_window.py): windows, padding and the brain mask."""

import torch

from cga_model.nn.network import CGAOutput
from cga_model.nn.sliding_window import segment_volume


class TumourEverywhere(torch.nn.Module):
    """Predicts enhancing tumour (class 3) with high confidence at every voxel; records its input shapes."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[2:]))
        logits = torch.zeros((x.shape[0], 4) + tuple(x.shape[2:]))
        logits[:, 3] = 5.0
        return CGAOutput(logits, None, None, None)


def _head(shape=(40, 36, 30), box=((8, 30), (5, 29), (4, 21))):
    """A normalised image ``(4, *shape)``: non-zero inside an irregular brain within ``box``, zero outside."""
    image = torch.zeros((4,) + shape)
    window = tuple(slice(a, b) for a, b in box)
    image[(slice(None),) + window] = torch.randn((4,) + tuple(b - a for a, b in box))
    image[:, box[0][0] : box[0][0] + 3, box[1][0] : box[1][0] + 3, :] = 0  # a corner of the box outside the brain
    return image


def test_brain_mask_puts_no_tumour_outside_the_brain():
    image = _head()
    brain = (image != 0).any(0)
    probs = segment_volume(TumourEverywhere(), image, (16, 16, 16), brain_only=True)
    assert probs.shape == (4,) + tuple(image.shape[1:])
    labels = probs.argmax(0)
    assert not labels[~brain].any() and (labels[brain] == 3).all()
    torch.testing.assert_close(probs.sum(0), torch.ones(image.shape[1:]))


def test_without_brain_mask_the_whole_volume_is_segmented():
    image = _head()
    labels = segment_volume(TumourEverywhere(), image, (16, 16, 16), brain_only=False).argmax(0)
    assert (labels == 3).all()  # the zero background too: this is what --no-brain-mask gives


def test_brain_mask_runs_the_network_on_the_brain_box_only():
    model, image = TumourEverywhere(), _head()
    segment_volume(model, image, (64, 64, 64), brain_only=True)
    assert model.shapes == [(24, 24, 24)]  # the 22x24x17 box, padded to multiples of 8: one window
    model.shapes.clear()
    segment_volume(model, image, (64, 64, 64), brain_only=False)
    assert model.shapes == [(40, 40, 32)]
