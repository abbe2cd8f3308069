"""Whole-volume segmentation (nn/sliding_window.py, nn/whole_volume.py): the path choice, windows, padding,
batched TTA, bfloat16 and the brain mask."""

import subprocess
import sys

import pytest
import torch

from cga_model.nn.network import CGAOutput, CGAUNet
from cga_model.nn.sliding_window import (
    FLIPS,
    class_indices,
    flips_of,
    native_bfloat16,
    predict_probs,
    resolve_precision,
    segment_labels,
    segment_volume,
)
from cga_model.nn.whole_volume import (
    bytes_per_voxel,
    default_whole_box,
    parse_memory,
    plan_inference,
    window_corners,
)

MB = 2**20


class TumourEverywhere(torch.nn.Module):
    """Predicts enhancing tumour (class 3) with high confidence at every voxel; records its input shapes."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
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


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return CGAUNet(base_channels=4).eval()


def test_brain_mask_puts_no_tumour_outside_the_brain():
    image = _head()
    brain = (image != 0).any(0)
    probs = segment_volume(TumourEverywhere(), image, (16, 16, 16), brain_only=True)
    assert probs.shape == (4,) + tuple(image.shape[1:])
    labels = probs.argmax(0)
    assert not labels[~brain].any() and (labels[brain] == 3).all()
    torch.testing.assert_close(probs.sum(0), torch.ones(image.shape[1:]))
    assert torch.equal(segment_labels(TumourEverywhere(), image, (16, 16, 16)), labels.to(torch.uint8))


def test_without_brain_mask_the_whole_volume_is_segmented():
    image = _head()
    labels = segment_volume(TumourEverywhere(), image, (16, 16, 16), brain_only=False).argmax(0)
    assert (labels == 3).all()  # the zero background too: this is what --no-brain-mask gives


def test_by_default_the_brain_box_goes_through_in_one_pass():
    model, image = TumourEverywhere(), _head()
    segment_volume(model, image)  # measures the model once (a 32^3 probe), cached
    model.shapes.clear()
    segment_volume(model, image, brain_only=True)
    assert model.shapes == [(1, 4, 24, 24, 24)]  # the 22x24x17 box, padded to multiples of 8
    model.shapes.clear()
    segment_volume(model, image, brain_only=False)
    assert model.shapes == [(1, 4, 40, 40, 32)]


def test_with_whole_box_a_tiny_budget_gives_windows_a_big_one_the_whole_box(network):
    per_voxel = bytes_per_voxel(network, 4)
    box = (64, 48, 40)
    whole = plan_inference(box, per_voxel, 100 * 2**30, whole_box=True)
    assert whole.whole and whole.roi == box and "fits the memory budget" in whole.describe()
    budget = int(per_voxel * 32**3)
    windows = plan_inference(box, per_voxel, budget, whole_box=True)
    assert not windows.whole and windows.estimate <= budget
    assert "does not fit" in windows.describe() and "64x48x40" in windows.describe()
    count = len(window_corners(box, windows.roi, windows.overlap))
    assert count < len(window_corners(box, (32, 32, 32), 0.5))  # fewer windows than the cube of the same volume
    with pytest.raises(ValueError, match="too small"):
        plan_inference(box, per_voxel, 1000)


def test_by_default_a_box_over_128_goes_through_in_128_cubed_windows_at_overlap_half(network):
    per_voxel = bytes_per_voxel(network, 4)
    box = (144, 176, 96)
    plan = plan_inference(box, per_voxel, 100 * 2**30)
    assert not plan.whole and plan.roi == (128, 128, 96) and plan.overlap == 0.5
    assert "windows of 128x128x96 (the default windows)" in plan.describe()
    small = int(per_voxel * 64**3)  # no 128^3 window fits: the fewest windows that do
    windows = plan_inference(box, per_voxel, small)
    assert windows.estimate <= small and "a 128^3 window does not fit" in windows.describe()
    with pytest.raises(ValueError, match="--whole-box .* not both"):
        plan_inference(box, per_voxel, 100 * 2**30, whole_box=True, roi=(64, 64, 64))


@pytest.mark.parametrize(
    "norm, whole, named", [("gn", False, "GroupNorm"), ("in", False, "InstanceNorm3d"), ("bn", True, "")]
)
def test_the_default_path_follows_whether_the_normalisation_depends_on_the_field_of_view(norm, whole, named):
    model = CGAUNet(base_channels=4, norm=norm).eval()
    assert default_whole_box(model)[0] is whole and named in default_whole_box(model)[1]
    lines = []
    image = torch.randn(4, 144, 16, 16)  # longer than a 128^3 window in X
    predict_probs(model, image, memory_limit=2**30, log=lines.append)
    if whole:
        assert lines[0].startswith("whole box in one pass (no normalisation of the network depends on the field")
    else:
        assert lines[0].startswith(f"windows of 128x16x16 (the default windows: its {named} statistics depend")
    forced = []
    predict_probs(model, image, memory_limit=2**30, whole_box=True, log=forced.append)
    assert forced[0].startswith("whole box in one pass (--whole-box, fits the memory budget)")
    assert not default_whole_box(lambda x: x)[0]  # a plain callable: its normalisation is unknown, so windows


def test_a_batchnorm_network_gives_the_same_probabilities_in_one_pass_as_in_windows():
    torch.manual_seed(1)
    model = CGAUNet(base_channels=4, norm="bn", sam=False).eval()
    image = torch.randn(4, 64, 32, 32)
    whole = predict_probs(model, image)
    windows = predict_probs(model, image, (32, 32, 32), overlap=0.5)
    core = (slice(None), slice(8, 56), slice(8, 24), slice(8, 24))  # away from the padded borders of windows
    assert (whole[core] - windows[core]).abs().max() < 0.005  # GroupNorm: 0.017 here


def test_the_memory_estimate_holds_at_a_larger_size(network):
    from cga_model.nn.whole_volume import live_tensor_peak

    per_voxel = bytes_per_voxel(network, 4)
    with torch.no_grad():
        measured = live_tensor_peak(network, torch.zeros(1, 4, 48, 64, 40))
    assert abs(measured - per_voxel * 48 * 64 * 40) <= 0.05 * measured


def test_the_memory_probe_does_not_import_the_compiler():
    # torch._dynamo takes a second or more to import: a cold `cga predict` must not pay it for the probe
    code = (
        "import sys, torch; from cga_model.nn.network import CGAUNet; from cga_model.nn.config import ModelConfig; "
        "from cga_model.nn.whole_volume import bytes_per_voxel; "
        "assert bytes_per_voxel(CGAUNet(ModelConfig(base_channels=4)), 4) > 0; print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_whole_box_equals_windows_when_the_window_covers_the_box(network):
    image = torch.randn(4, 24, 32, 16)
    whole = predict_probs(network, image)
    windows = predict_probs(network, image, (32, 32, 32))  # forced, but cut to the box: the same single pass
    torch.testing.assert_close(whole, windows)


def test_forced_windows_blend_to_probabilities(network):
    lines = []
    probs = predict_probs(network, torch.randn(4, 40, 24, 24), (16, 16, 16), overlap=0.5, log=lines.append)
    torch.testing.assert_close(probs.sum(0), torch.ones(40, 24, 24))
    assert len(lines) == 1 and lines[0].startswith("windows of 16x16x16 (--roi/--overlap given): box 40x24x24")


def test_batched_tta_equals_the_mean_of_sequential_flips(network):
    image = torch.randn(4, 24, 16, 32)
    batched = predict_probs(network, image, tta=8)
    sequential = torch.stack(
        [predict_probs(network, image.flip([a + 1 for a in f])).flip([a + 1 for a in f]) for f in FLIPS]
    ).mean(0)
    torch.testing.assert_close(batched, sequential, atol=1e-5, rtol=1e-4)


def test_tta_n_takes_the_first_n_flips_in_batches_that_fit():
    model = TumourEverywhere()
    segment_volume(model, _head(), tta=3, brain_only=False)
    assert [s[0] for s in model.shapes[1:]] == [3]  # after the probe: one batch of 3 copies
    assert flips_of(0) == flips_of(1) == ((),) and flips_of(3) == ((), (0,), (1,)) and len(flips_of(8)) == 8
    model.shapes.clear()
    segment_volume(model, _head(), tta=3, brain_only=False, memory_limit=int(bytes_per_voxel(model, 4) * 2 * 51200))
    assert [s[0] for s in model.shapes] == [2, 1]  # 40x40x32 = 51200 voxels: two copies fit, then the third
    for bad in (-1, 9, True):
        with pytest.raises(ValueError, match="--tta"):
            flips_of(bad)


def test_bfloat16_runs_and_stays_close(network):
    image = torch.randn(4, 16, 24, 16)
    full = predict_probs(network, image)
    half = predict_probs(network, image, precision="bfloat16")
    assert half.dtype == torch.float32
    assert (half - full).abs().max() < 0.05
    with pytest.raises(ValueError, match="--precision"):
        predict_probs(network, image, precision="float16")


def test_auto_precision_takes_bfloat16_only_where_the_device_has_bfloat16_units(network, monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == ("float32", "--precision")
    assert resolve_precision("bfloat16", cpu) == ("bfloat16", "--precision")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert native_bfloat16(cpu) is None and resolve_precision("auto", cpu)[0] == "float32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", cpu) == ("bfloat16", "auto: AVX512-BF16 on this device")
    lines = []
    image = torch.randn(4, 16, 24, 16)
    auto = predict_probs(network, image, precision="auto", log=lines.append)
    torch.testing.assert_close(auto, predict_probs(network, image, precision="bfloat16"))
    assert lines[0].endswith("; bfloat16 (auto: AVX512-BF16 on this device); prototypes per input")
    # a model that is not a torch module (ONNX Runtime's) runs its own float32 graph
    assert resolve_precision("auto", cpu, torch_model=False) == ("float32", "the ONNX model's own")
    with pytest.raises(ValueError, match="--precision bfloat16 needs a PyTorch checkpoint"):
        resolve_precision("bfloat16", cpu, torch_model=False)


def test_memory_sizes_parse():
    assert parse_memory("800") == 800 * MB and parse_memory("2GB") == 2 * 2**30 and parse_memory("1.5g") == 1.5 * 2**30
    assert parse_memory("512MiB") == 512 * MB
    for bad in ("", "-1GB", "lots", "0"):
        with pytest.raises(ValueError, match="--memory-limit"):
            parse_memory(bad)


@pytest.mark.parametrize("classes", [2, 4, 5])
def test_class_indices_are_the_argmax_with_the_first_class_winning_ties(classes):
    probs = torch.randn(1, classes, 12, 10, 8).contiguous(memory_format=torch.channels_last_3d)[0]
    probs[:, :3] = 0.5  # ties everywhere in these slices
    labels = class_indices(probs)
    assert labels.dtype == torch.uint8 and torch.equal(labels.long(), probs.argmax(0))
    assert (labels[:3] == 0).all()
