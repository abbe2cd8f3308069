"""Prototypes pooled per tile of the training crop (``cga_model.nn.prototype_field``): the tiles, the update
against one update per tile, the network with each field, and ``load_predictor``'s choice."""

import pytest
import torch

import cga_kernels as ck
from cga_model import CGAUNet
from cga_model.inference.predictor import load_predictor
from cga_model.nn.checkpoint import save_checkpoint
from cga_model.nn.config import ModelConfig
from cga_model.nn.prototype_field import prototype_note, set_prototype_field, tile_grid, tile_ids, tiled_update


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


@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("classes", [None, (1, 3)])
@pytest.mark.parametrize("size, tile", [((10, 12, 9), (5, 6, 4)), ((12, 7), (4, 7))])
def test_each_tile_is_updated_as_if_alone(mode, classes, size, tile):
    update = ck.IntraClassUpdate(4, mode=mode, classes=classes)
    x, attention = torch.randn(2, 6, *size, dtype=torch.float64), torch.randn(2, 4, *size, dtype=torch.float64)
    out, proto, counts = tiled_update(update, x, attention, tile)
    torch.testing.assert_close(out, _update_tile_by_tile(update, x, attention, tile))
    _, whole_proto, whole_counts = update(x, attention)  # the input's own prototypes, as the loss expects
    torch.testing.assert_close(proto, whole_proto)
    torch.testing.assert_close(counts, whole_counts)
    assert not torch.equal(out, update(x, attention)[0])  # the field matters


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
        assert network.sam.prototype_tile == (4, 4, 4)  # 32 / rate 8 at the bottleneck
        per_tile = network(crop).logits, network(box).logits
    assert torch.equal(per_tile[0], per_input[0]) and not torch.allclose(per_tile[1], per_input[1])
    assert prototype_note(network) == "; prototypes per 32x32x32 tile"
    set_prototype_field(network, "input", None)
    assert network.sam.prototype_tile is None and prototype_note(network) == "; prototypes per input"


def test_a_network_without_sam_is_left_alone_and_a_bad_field_is_refused():
    baseline = CGAUNet(ModelConfig(base_channels=4, sam=False))
    set_prototype_field(baseline, "crop", (64, 64, 64))
    assert prototype_note(baseline) == ""
    with pytest.raises(ValueError, match="prototype_field must be one of .*'window'"):
        set_prototype_field(baseline, "window", (64, 64, 64))


def _checkpoint(path, **config):
    torch.manual_seed(0)
    model = CGAUNet(ModelConfig(base_channels=4))
    save_checkpoint(path, model=model.state_dict(), config={"model": model.config.to_dict(), **config})
    return path


def test_load_predictor_tiles_by_the_training_crop_unless_asked_otherwise(tmp_path):
    checkpoint = _checkpoint(tmp_path / "best.pt", crop=[64, 32, 64])
    assert load_predictor(checkpoint)[0].sam.prototype_tile == (8, 4, 8)
    assert load_predictor(checkpoint, prototype_field="input")[0].sam.prototype_tile is None
    bare = _checkpoint(tmp_path / "bare.pt")  # no training record: nothing to tile by
    assert load_predictor(bare)[0].sam.prototype_tile is None
    with pytest.raises(ValueError, match=r"bare.pt records no training crop .*use --prototype-field input"):
        load_predictor(bare, prototype_field="crop")
    with pytest.raises(ValueError, match=r"--prototype-field crop: the ONNX model .* over each input"):
        load_predictor(tmp_path / "model.onnx", prototype_field="crop")
