"""The oracle itself, checked by hand on tiny cases with explicit loops."""

import math

import torch

from cga_kernels import reference as ref


def test_pool_and_update_by_hand():
    x = torch.tensor([[[1.0, 2.0, 3.0, 10.0]]])  # B=1, C=1, N=4
    labels = torch.tensor([[0, 0, 1, 2]])
    proto, counts = ref.prototype_pool(x, labels, num_classes=4)
    assert proto.flatten().tolist() == [1.5, 3.0, 10.0, 0.0]  # class 3 empty -> 0
    assert counts.flatten().tolist() == [2.0, 1.0, 1.0, 0.0]
    y, _, _ = ref.intra_class_update(x, labels, num_classes=4)
    assert y.flatten().tolist() == [2.5, 3.5, 6.0, 20.0]
    y, _, _ = ref.intra_class_update(x, labels, num_classes=4, classes=[1], residual=False)
    assert y.flatten().tolist() == [0.0, 0.0, 3.0, 0.0]


def test_soft_pool_by_hand():
    x = torch.tensor([[[2.0, 4.0]]])
    w = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    proto, counts = ref.prototype_pool(x, w)
    assert proto.flatten().tolist() == [3.5, 0.0] and counts.flatten().tolist() == [4.0, 0.0]
    y = ref.prototype_scatter(proto, w)
    assert y.flatten().tolist() == [3.5, 10.5]


def test_inter_class_loss_forms_by_hand():
    proto = torch.tensor(
        [[[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], [[1.0, 1.0], [1.0, 1.0], [4.0, 5.0]]], dtype=torch.float64
    )
    counts = torch.tensor([[1.0, 2.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    # paper: present pairs only, both orders
    d0 = 2 * 5.0
    d1 = 2 * (0.0 + 5.0 + 5.0)
    expected = (math.log(1 / (1 + d0)) + math.log(1 / (1 + d1))) / 2
    assert math.isclose(ref.inter_class_loss(proto, counts, "paper").item(), expected, rel_tol=1e-12)
    # official: all classes, prototypes scaled by c / (c + 1e-5), D = sum_b sqrt(sum_ij ||pi - pj||^2)
    total = 0.0
    for b in range(2):
        p = [[v * counts[b, k].item() / (counts[b, k].item() + 1e-5) for v in proto[b, k].tolist()] for k in range(3)]
        sq = sum((p[i][c] - p[j][c]) ** 2 for i in range(3) for j in range(3) for c in range(2))
        total += math.sqrt(sq)
    assert math.isclose(
        ref.inter_class_loss(proto, counts, "official").item(), 10 * math.log(100 / total + 1), rel_tol=1e-12
    )


def test_distances_leave_absent_classes_out():
    proto = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]]])
    dist = ref.prototype_distances(proto, torch.tensor([[1.0, 1.0, 0.0]]))
    assert dist[0, 0, 1] == 5 and dist[0, 1, 0] == 5
    assert torch.all(dist[0, 2] == 0) and torch.all(dist[0, :, 2] == 0)
