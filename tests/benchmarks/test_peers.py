"""The benchmark's peers, the released code's one-hot loop and the roofline's byte counts are right."""

import mmap

import pytest
import torch

import cga_kernels as ck
from benchmarks import roofline
from benchmarks.peers import (
    interleaved_times,
    scatter_add_update,
    torch_scatter_missing,
    torch_scatter_update,
)
from benchmarks.released import released_intra_update, released_one_hot, vectorised_one_hot


@pytest.mark.parametrize("spatial", [(5, 4, 3), (6, 7)])
def test_released_one_hot_loop_is_the_one_hot(spatial):
    labels = torch.randint(0, 4, (2, *spatial))
    looped = released_one_hot(labels, 4)
    assert torch.equal(looped, vectorised_one_hot(labels, 4))
    assert torch.equal(looped.argmax(1), labels) and torch.equal(looped.sum(1), torch.ones(2, *spatial))
    x = torch.randn(2, 3, *spatial)
    for a, b in zip(
        released_intra_update(x, labels, 4), released_intra_update(x, labels, 4, one_hot=vectorised_one_hot)
    ):
        assert torch.equal(a, b)


def _check_peer(update):
    x = torch.randn(2, 6, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (2, 5, 4, 3))
    labels[1][labels[1] == 3] = 0  # an empty class
    y, proto = update(x, labels, 4)
    y_ref, p_ref, _ = ck.reference.intra_class_update(x, labels, 4)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(proto, p_ref)
    g = torch.autograd.grad((y * y).sum() + proto.sum(), x)[0]
    torch.testing.assert_close(g, torch.autograd.grad((y_ref * y_ref).sum() + p_ref.sum(), x)[0])


def test_scatter_add_peer_matches_reference():
    _check_peer(scatter_add_update)


@pytest.mark.skipif(torch_scatter_missing() is not None, reason=str(torch_scatter_missing()))
def test_torch_scatter_peer_matches_reference():
    _check_peer(torch_scatter_update)


def test_candidates_are_interleaved():
    order = []
    times, faults = interleaved_times({name: (lambda n=name: order.append(n)) for name in "ABC"}, rounds=2)
    assert order == list("ABC") * 3  # one warm-up round, then two timed ones
    assert all(len(t) == 2 for t in times.values()) and all(len(f) == 2 for f in faults.values())


def _touch_fresh_pages(size: int = 2**26) -> None:
    """Write one byte per 4 KiB page of a new anonymous mapping: every page is a first touch, whatever state the
    allocator is in (a malloc of the same size may be served from a heap that earlier tests already touched)."""
    with mmap.mmap(-1, size) as pages:
        pages[::4096] = b"\x01" * (size // 4096)


def test_page_faults_count_first_touches_of_fresh_memory():
    # 64 MiB of fresh pages: >= 8 faults even with 2 MiB transparent huge pages; a step that maps nothing faults less
    _, faults = interleaved_times({"touch": _touch_fresh_pages, "none": lambda: None}, rounds=3)
    assert min(faults["touch"]) >= 8
    assert max(faults["none"]) < min(faults["touch"])


def test_eager_traffic_counts_inputs_outputs_not_views():
    a, b = torch.randn(100, 10), torch.randn(10)
    traffic = roofline.measure(lambda: (a + b.expand(100, 10)).t().contiguous(), triton=False)
    # add: reads a (4000 B) and b once (40 B), writes 4000 B; t is a view; contiguous copies 4000 B in and out
    assert traffic.eager_bytes == 4000 + 40 + 4000 + 4000 + 4000
    assert traffic.eager_launches == 2


def test_kernel_traffic_counts_what_the_pool_kernel_loads():
    from cga_kernels import triton_ops

    x, labels = torch.randn(1, 16, 256), torch.randint(0, 4, (1, 256))
    traffic = roofline.Traffic()
    with roofline.kernel_traffic(traffic):
        triton_ops.prototype_pool(x, labels, 4)
    assert traffic.kernel_launches == 1
    least = x.numel() * 4 + labels.numel() * 8  # x and the labels once each
    atomics = 2 * 4 * (4 * 16 + 4)  # one voxel block: read-modify-write of the (K, C) float32 sums and K counts
    assert traffic.kernel_bytes == least + atomics
