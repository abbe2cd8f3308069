"""Where the SAM pools prototypes (``cga_model.nn.prototype_field``): the window around each voxel against one
update per window, the tiles against one update per tile, the network with each field, and ``load_predictor``'s
choice."""

import itertools

import pytest
import torch

import cga_kernels as ck
from cga_model import CGAUNet
from cga_model.inference.predictor import load_predictor
from cga_model.nn.checkpoint import save_checkpoint
from cga_model.nn.config import ModelConfig
from cga_model.nn.prototype_field import (
    Field,
    prototype_note,
    set_prototype_field,
    tile_grid,
    tile_ids,
    tiled_update,
    window_sums,
    window_update,
)


def _window_start(i: int, size: int, window: int) -> int:
    w = min(window, size)
    return min(max(i - w // 2, 0), size - w)


@pytest.mark.parametrize("size, window", [((7, 5, 6), (3, 4, 9)), ((9,), (4,)), ((6, 5), (1, 5))])
def test_window_sums_add_the_window_around_each_voxel(size, window):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    sums = window_sums(x, window)
    for index in itertools.product(*(range(s) for s in size)):
        box = tuple(
            slice(_window_start(i, s, t), _window_start(i, s, t) + min(t, s)) for i, s, t in zip(index, size, window)
        )
        torch.testing.assert_close(sums[(..., *index)], x[(..., *box)].sum(tuple(range(2, x.dim()))))


def _update_window_by_window(update, x, attention, window):
    """The reference: each voxel's output is ``update`` run on the window around it alone."""
    out = torch.empty_like(x)
    size = x.shape[2:]
    for index in itertools.product(*(range(s) for s in size)):
        starts = [_window_start(i, s, t) for i, s, t in zip(index, size, window)]
        box = tuple(slice(a, a + min(t, s)) for a, t, s in zip(starts, window, size))
        y, _, _ = update(x[(..., *box)], attention[(..., *box)])
        out[(..., *index)] = y[(..., *(i - a for i, a in zip(index, starts)))]
    return out


def test_a_map_within_the_window_is_the_plain_update_and_soft_masks_pass_gradients():
    update = ck.IntraClassUpdate(4, mode="soft")
    x = torch.randn(1, 3, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    attention = torch.randn(1, 4, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    for window in ((6, 4, 4), (16, 16, 16)):
        plain = update(x, attention)
        assert all(torch.equal(a, b) for a, b in zip(window_update(update, x, attention, window), plain))
    assert torch.autograd.gradcheck(lambda a, b: window_update(update, a, b, (3, 2, 4))[0], (x, attention))


def test_a_bfloat16_map_is_summed_in_float32_and_keeps_its_type():
    update = ck.IntraClassUpdate(4)
    x, attention = torch.randn(1, 8, 12, 10, 9), torch.randn(1, 4, 12, 10, 9)
    out = window_update(update, x.bfloat16(), attention, (4, 4, 4))[0]
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), window_update(update, x, attention, (4, 4, 4))[0], atol=0.05, rtol=0.02)


@pytest.mark.parametrize(
    "size, tile, grid", [((18, 22, 18), (8, 8, 8), (2, 3, 2)), ((8, 8, 8), (8, 8, 8), (1, 1, 1)), ((3,), (8,), (1,))]
)
def test_the_grid_has_round_size_over_tile_parts(size, tile, grid):
    assert tile_grid(size, tile) == grid


def test_tiles_are_near_equal_blocks_in_row_major_order():
    ids, count = tile_ids((5, 4), (2, 2))  # grid 2 x 2 (round(2.5) = 2): rows 0-2 / 3-4, columns 0-1 / 2-3
    assert count == 4
    assert ids.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def _update_tile_by_tile(update, x, attention, tile):
    """The reference: ``update`` on each tile's voxels alone (a 1-D map of them), written back in place."""
    ids, count = tile_ids(x.shape[2:], tile)
    out = torch.empty_like(x)
    for t in range(count):
        inside = ids == t
        y, _, _ = update(x[..., inside].unsqueeze(-1), attention[..., inside].unsqueeze(-1))
        out[..., inside] = y.squeeze(-1)
    return out


FIELDS = {"window": (window_update, _update_window_by_window), "crop": (tiled_update, _update_tile_by_tile)}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("classes, residual", [(None, True), ((1, 3), True), (None, False)])
@pytest.mark.parametrize("size, extent", [((10, 7, 9), (5, 4, 12)), ((12, 7), (4, 7))])
def test_each_voxel_is_updated_as_by_its_window_or_tile_alone(field, mode, classes, residual, size, extent):
    update = ck.IntraClassUpdate(4, mode=mode, classes=classes, residual=residual)
    x, attention = torch.randn(2, 5, *size, dtype=torch.float64), torch.randn(2, 4, *size, dtype=torch.float64)
    attention[:, 2] += 1.5  # every class present somewhere in a hard mask, and some fields without class 1
    field_update, reference = FIELDS[field]
    out, proto, counts = field_update(update, x, attention, extent)
    torch.testing.assert_close(out, reference(update, x, attention, extent))
    _, whole_proto, whole_counts = update(x, attention)  # the input's own prototypes, as the loss expects
    torch.testing.assert_close(proto, whole_proto)
    torch.testing.assert_close(counts, whole_counts)
    assert not torch.allclose(out, update(x, attention)[0])  # the field matters


def test_a_map_within_one_tile_and_no_tile_are_the_plain_update():
    update = ck.IntraClassUpdate(4)
    x, attention = torch.randn(1, 3, 6, 6, 6), torch.randn(1, 4, 6, 6, 6)
    plain = update(x, attention)
    for tile in (None, (6, 6, 6), (8, 8, 8)):
        assert all(torch.equal(a, b) for a, b in zip(tiled_update(update, x, attention, tile), plain))


def test_an_empty_class_keeps_zero_prototypes_and_soft_masks_pass_gradients():
    update = ck.IntraClassUpdate(4, mode="soft")
    x = torch.randn(1, 3, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    attention = torch.randn(1, 4, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: tiled_update(update, a, b, (3, 4, 4))[0], (x, attention))
    labels = torch.zeros(1, 4, 6, 4, 4)
    labels[:, 2, :3] = 50.0  # class 2 only in the first tile, class 0 elsewhere: classes 1 and 3 empty
    _, proto, counts = tiled_update(ck.IntraClassUpdate(4), x.detach(), labels, (3, 4, 4))
    assert counts[0].tolist() == [48.0, 0.0, 48.0, 0.0] and not proto[0, 1].any() and not proto[0, 3].any()


def test_the_network_on_its_crop_is_the_same_and_on_a_box_differs():
    network = CGAUNet(ModelConfig(base_channels=4)).eval()
    crop, box = torch.randn(1, 4, 32, 32, 32), torch.randn(1, 4, 64, 48, 32)
    with torch.no_grad():
        per_input = network(crop).logits, network(box).logits
        set_prototype_field(network, "crop", (32, 32, 32))
        assert network.sam.prototype_field == Field("crop", (4, 4, 4))  # 32 / rate 8 at the bottleneck
        per_tile = network(crop).logits, network(box).logits
    assert torch.equal(per_tile[0], per_input[0]) and not torch.allclose(per_tile[1], per_input[1])
    assert prototype_note(network) == "; prototypes per 32x32x32 tile"
    set_prototype_field(network, "input", None)
    assert network.sam.prototype_field is None and prototype_note(network) == "; prototypes per input"


def test_the_window_field_changes_only_inputs_larger_than_the_window():
    network = CGAUNet(ModelConfig(base_channels=4)).eval()
    window, long = torch.randn(1, 4, 128, 48, 32), torch.randn(1, 4, 192, 32, 32)
    with torch.no_grad():
        per_input = network(window).logits, network(long).logits
        set_prototype_field(network, "window")
        assert network.sam.prototype_field == Field("window", (16, 16, 16))  # 128 / rate 8
        per_voxel = network(window).logits, network(long).logits
        set_prototype_field(network, "crop", (64, 64, 64))
        per_tile = network(long).logits
    assert torch.equal(per_voxel[0], per_input[0])
    assert not torch.allclose(per_voxel[1], per_input[1]) and not torch.allclose(per_voxel[1], per_tile)
    set_prototype_field(network, "window")
    assert prototype_note(network) == "; prototypes per 128x128x128 window around each voxel"


def test_a_network_without_sam_is_left_alone_and_a_bad_field_is_refused():
    baseline = CGAUNet(ModelConfig(base_channels=4, sam=False))
    set_prototype_field(baseline, "crop", (64, 64, 64))
    assert prototype_note(baseline) == ""
    with pytest.raises(ValueError, match="prototype_field must be one of .*'tiles'"):
        set_prototype_field(baseline, "tiles", (64, 64, 64))
    with pytest.raises(ValueError, match=r"prototype_field 'crop' needs the training crop .*use 'window' or 'input'"):
        set_prototype_field(CGAUNet(ModelConfig(base_channels=4)), "crop")


def _checkpoint(path, **config):
    torch.manual_seed(0)
    model = CGAUNet(ModelConfig(base_channels=4))
    save_checkpoint(path, model=model.state_dict(), config={"model": model.config.to_dict(), **config})
    return path


def test_load_predictor_pools_over_the_window_unless_asked_otherwise(tmp_path):
    checkpoint = _checkpoint(tmp_path / "best.pt", crop=[64, 32, 64])
    assert load_predictor(checkpoint)[0].sam.prototype_field == Field("window", (16, 16, 16))
    assert load_predictor(checkpoint, prototype_field="crop")[0].sam.prototype_field == Field("crop", (8, 4, 8))
    assert load_predictor(checkpoint, prototype_field="input")[0].sam.prototype_field is None
    bare = _checkpoint(tmp_path / "bare.pt")  # no training record: no crop to tile by, the window still works
    assert load_predictor(bare)[0].sam.prototype_field == Field("window", (16, 16, 16))
    with pytest.raises(ValueError, match=r"bare.pt records no training crop .*use --prototype-field input"):
        load_predictor(bare, prototype_field="crop")
    with pytest.raises(ValueError, match=r"--prototype-field crop: the ONNX model .* over each input"):
        load_predictor(tmp_path / "model.onnx", prototype_field="crop")
