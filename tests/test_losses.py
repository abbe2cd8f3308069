"""Losses: perfect prediction ~0, attention target, inter-class start epoch and sign, label mapping."""

import numpy as np
import pytest
import torch

from cga_model import CGALoss, CGAOutput, classes_to_labels, labels_to_classes
from cga_model.losses import attention_mse_loss, downsample_labels, one_hot, softmax_dice_loss


def perfect_output(labels, rate=2):
    logits = one_hot(labels, 4) * 50.0
    attention = one_hot(downsample_labels(labels, [s // rate for s in labels.shape[1:]]), 4)
    proto = torch.randn(labels.shape[0], 4, 8)
    return CGAOutput(logits, attention, proto, torch.ones(labels.shape[0], 4))


def test_perfect_prediction_has_near_zero_loss():
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    terms = CGALoss(inter_start_epoch=20)(perfect_output(labels), labels, epoch=0)
    assert terms.total.item() < 1e-4 and terms.dice.item() < 1e-4 and terms.attention.item() == 0


def test_dice_of_absent_class_is_zero_loss_and_wrong_prediction_is_penalised():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    assert softmax_dice_loss(one_hot(labels, 4) * 50, labels).item() < 1e-4
    wrong = torch.ones_like(labels)
    assert softmax_dice_loss(one_hot(wrong, 4) * 50, labels).item() > 0.99


def test_attention_target_is_nearest_downsampled_one_hot():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 0, 0, 0] = 3  # the first voxel of the first 2-block is what nearest picks
    small = downsample_labels(labels, (2, 2, 2))
    assert small[0, 0, 0, 0] == 3 and small.sum() == 3
    attention = torch.zeros(1, 4, 2, 2, 2)
    expected = ((one_hot(small, 4) - attention) ** 2).mean()
    torch.testing.assert_close(attention_mse_loss(attention, labels), expected)


def test_inter_term_joins_at_start_epoch_with_sign():
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    out = perfect_output(labels)
    loss = CGALoss(inter_weight=0.5, inter_start_epoch=3)
    assert loss(out, labels, epoch=2).inter.item() == 0
    on = loss(out, labels, epoch=3).inter
    assert on.item() < 0  # log(1 / (1 + D)) < 0 for distinct prototypes
    reversed_ = CGALoss(inter_weight=0.5, inter_start_epoch=3, inter_sign=-1)(out, labels, epoch=3).inter
    torch.testing.assert_close(reversed_, -on)
    official = CGALoss(inter_form="official", inter_start_epoch=0)(out, labels, epoch=0).inter
    assert official.item() > 0


def test_label_mapping():
    seg = np.array([0, 1, 2, 4, 3])
    assert labels_to_classes(seg).tolist() == [0, 1, 2, 3, 3]
    assert classes_to_labels(np.array([0, 1, 2, 3])).tolist() == [0, 1, 2, 4]
    with pytest.raises(ValueError, match=r"labels must be in \{0, 1, 2, 3, 4\}"):
        labels_to_classes(np.array([0, 5]))
