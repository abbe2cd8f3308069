"""ONNX and torch.export: translations of the cga:: ops, the exported CGA U-Net in ONNX Runtime, the
ExportedProgram, `cga export` and `cga predict --onnx` (small networks, a few exports shared by module)."""

import nibabel as nib
import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install .[onnx])")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install .[onnx])")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install .[onnx])")

import cga_kernels as ck  # noqa: E402
from cga_kernels.onnx import translation_table  # noqa: E402
from cga_model import CGAUNet  # noqa: E402
from cga_model.cli import main as cga  # noqa: E402
from cga_model.data.cases import normalize, pad_to_multiple  # noqa: E402
from cga_model.data.synth import synthesize_case, synthesize_cohort  # noqa: E402
from cga_model.inference.export import export_onnx, export_program, load_program, program_ops, trace  # noqa: E402
from cga_model.inference.onnx_runtime import OnnxSegmenter  # noqa: E402
from cga_model.nn.checkpoint import save_checkpoint  # noqa: E402

K = 4
TOL = 1e-4  # absolute, float32 (the bound)


class EveryOp(torch.nn.Module):
    """Every translated forward op and option: hard (with ignore_index) and soft masks, residual on
    and off, ``classes`` subsets, pool, scatter and distances. Class 2 is never in the labels fed."""

    def forward(self, x, labels, weights):
        hard, _, _ = ck.intra_class_update(x, labels, num_classes=K, ignore_index=255)
        hard_subset, proto_h, counts_h = ck.intra_class_update(
            x, labels, num_classes=K, residual=False, classes=(1, 3), ignore_index=255
        )
        soft_subset, proto_s, counts_s = ck.intra_class_update(x, weights, classes=(0, 2))
        pooled, pooled_counts = ck.prototype_pool(x, weights)
        pooled_hard, _ = ck.prototype_pool(x, labels, num_classes=K, ignore_index=255)
        return (
            hard,
            hard_subset,
            proto_h,
            counts_h,
            soft_subset,
            proto_s,
            counts_s,
            pooled_counts,
            ck.prototype_scatter(pooled, weights),
            ck.prototype_scatter(pooled_hard, labels, ignore_index=255),
            ck.prototype_distances(proto_h, counts_h),
        )


def _op_inputs(batch, d, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1, 3, 255])[
        torch.randint(0, 4, (batch, d, h, w), generator=g)
    ]  # 255 = ignored, 2 = empty
    weights = torch.rand(batch, K, d, h, w, generator=g)
    return torch.randn(batch, 6, d, h, w, generator=g), labels, weights


@pytest.fixture(scope="module")
def every_op_session():
    dim = torch.export.Dim
    batch, d, h, w = dim("batch", min=1), dim("d", min=2), dim("h", min=2), dim("w", min=2)
    spatial = {0: batch, 2: d, 3: h, 4: w}
    shapes = {"x": spatial, "labels": {0: batch, 1: d, 2: h, 3: w}, "weights": spatial}
    program = torch.onnx.export(
        EveryOp().eval(),
        _op_inputs(2, 4, 6, 5, seed=0),
        dynamo=True,
        dynamic_shapes=shapes,
        custom_translation_table=translation_table(),
        verbose=False,
    )
    onnx.checker.check_model(program.model_proto, full_check=True)
    return ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("shape", [(1, 3, 7, 4), (3, 5, 2, 6)])
def test_every_op_translation_matches_the_kernels(every_op_session, shape):
    x, labels, weights = _op_inputs(*shape, seed=sum(shape))
    got = every_op_session.run(None, {"x": x.numpy(), "labels": labels.numpy(), "weights": weights.numpy()})
    expected = EveryOp()(x, labels, weights)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == tuple(e.shape) and np.isfinite(g).all(), i
        np.testing.assert_allclose(g, e.numpy(), rtol=0, atol=TOL, err_msg=f"output {i}")
    proto_h, counts_h = got[2], got[3]
    assert (counts_h[:, 2] == 0).all() and (proto_h[:, 2] == 0).all()  # the empty class: zero prototype, no NaN


def _checkpoint(path, **options):
    torch.manual_seed(3)
    model = CGAUNet(base_channels=4, **options)
    save_checkpoint(path, model=model.state_dict(), config={"model": model.config.to_dict()})
    return model.eval()


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    """A hard-mask network's checkpoint, exported with `cga export`: (model, checkpoint, onnx path)."""
    root = tmp_path_factory.mktemp("hard")
    model = _checkpoint(root / "best.pt")
    assert cga(["export", "--checkpoint", str(root / "best.pt"), "--out", str(root / "model.onnx")]) == 0
    return model, root / "best.pt", root / "model.onnx"


@pytest.fixture(scope="module")
def soft(tmp_path_factory):
    """A soft-mask network updating class 3 only, traced once: (model, ExportedProgram, OnnxExport)."""
    torch.manual_seed(4)
    model = CGAUNet(base_channels=4, mask_mode="soft", intra_classes=(3,)).eval()
    program = trace(model)
    return model, program, export_onnx(program, tmp_path_factory.mktemp("soft") / "model.onnx")


def _models(hard, soft):
    return {"hard": (hard[0], hard[2]), "soft, classes=(3,)": (soft[0], soft[2].path)}


def test_exported_files_pass_the_checker_with_standard_operators_only(hard, soft):
    for name, (_, path) in _models(hard, soft).items():
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path))
        assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}, name
        assert {"MatMul", "Conv"} <= {n.op_type for n in model.graph.node}, name
    assert soft[2].max_abs_diff <= TOL and soft[2].checked_shape == (1, 4, 24, 16, 32)


@pytest.mark.parametrize("shape", [(1, 4, 16, 24, 32), (3, 4, 32, 16, 16)])
def test_onnx_runtime_matches_pytorch_on_random_inputs_of_two_sizes(hard, soft, shape):
    image = torch.randn(shape)
    for name, (model, path) in _models(hard, soft).items():
        got = OnnxSegmenter(path)(image)
        with torch.no_grad():
            expected = model(image)
        torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=TOL, msg=name)
        torch.testing.assert_close(got.attention, expected.attention, rtol=0, atol=TOL, msg=name)


def test_onnx_runtime_matches_pytorch_on_a_synthetic_case(hard, soft):
    images, _ = synthesize_case(shape=(40, 32, 24), seed=5)
    image = torch.from_numpy(pad_to_multiple(normalize(images), 8))[None]
    for name, (model, path) in _models(hard, soft).items():
        got = OnnxSegmenter(path)(image).logits
        with torch.no_grad():
            expected = model(image).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=TOL, msg=name)


def test_exported_program_saves_loads_runs_and_keeps_the_cga_op(soft, tmp_path):
    model, program, _ = soft
    path = export_program(program, tmp_path / "model.pt2")
    loaded = load_program(path)
    assert program_ops(loaded) == ["cga.intra_update_soft.default"]
    image = torch.randn(2, 4, 24, 32, 16)  # another size than traced
    with torch.no_grad():
        got, expected = loaded.module()(image), model(image)
    assert set(got) == {"logits", "attention", "prototypes", "counts"}
    for name, value in got.items():
        torch.testing.assert_close(value, getattr(expected, name), rtol=0, atol=1e-5, msg=name)


def test_cga_predict_onnx_writes_the_label_maps_of_the_pytorch_path(hard, tmp_path):
    _, checkpoint, onnx_path = hard
    cohort = tmp_path / "cohort"
    ids = synthesize_cohort(cohort, cases=2, seed=4, shape=(40, 32, 24), progress=False)
    common = ["--input", str(cohort), "--roi", "16", "16", "16"]
    torch_argv = ["predict", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "torch"), *common]
    assert cga([*torch_argv, "--precision", "float32"]) == 0  # the ONNX model's arithmetic, on any CPU
    assert cga(["predict", "--onnx", str(onnx_path), "--out", str(tmp_path / "onnx"), *common]) == 0
    values = set()
    for case_id in ids:
        a = np.asanyarray(nib.load(tmp_path / "torch" / f"{case_id}.nii.gz").dataobj)
        b = np.asanyarray(nib.load(tmp_path / "onnx" / f"{case_id}.nii.gz").dataobj)
        np.testing.assert_array_equal(a, b, err_msg=case_id)
        values |= set(np.unique(a).tolist())
    assert len(values) > 1  # the comparison is not between two constant maps


def test_cga_export_and_predict_refuse_bad_requests_in_one_line(hard, tmp_path, capsys):
    _, checkpoint, onnx_path = hard
    capsys.readouterr()
    requests = {
        "exists": ["export", "--checkpoint", str(checkpoint), "--out", str(onnx_path)],
        "suffix": ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "model.txt")],
        "no checkpoint": ["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")],
        "onnx on cuda": [
            "predict",
            "--onnx",
            str(onnx_path),
            "--input",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--device",
            "cuda",
        ],
    }
    for what, argv in requests.items():
        assert cga(argv) == 2, what
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cga {argv[0]}: error: ") and "\n" not in err, (what, err)
    assert "--overwrite" in cga_error(["export", "--checkpoint", str(checkpoint), "--out", str(onnx_path)], capsys)
    bf16 = ["predict", "--onnx", str(onnx_path), "--input", str(tmp_path), "--out", str(tmp_path / "b")]
    assert "--precision bfloat16 needs a PyTorch checkpoint" in cga_error([*bf16, "--precision", "bfloat16"], capsys)
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "model.txt").exists()


def cga_error(argv, capsys) -> str:
    assert cga(argv) == 2
    return capsys.readouterr().err


def test_an_exported_model_takes_the_default_path_of_its_normalisation(hard, tmp_path):
    from cga_model.nn.whole_volume import default_whole_box

    _checkpoint(tmp_path / "gn.pt", norm="gn")
    assert cga(["export", "--checkpoint", str(tmp_path / "gn.pt"), "--out", str(tmp_path / "gn.onnx")]) == 0
    assert (
        default_whole_box(OnnxSegmenter(tmp_path / "gn.onnx"))
        == default_whole_box(CGAUNet(norm="gn"))
        == (
            False,
            "its GroupNorm statistics depend on the field of view",
        )
    )
    assert default_whole_box(OnnxSegmenter(hard[2])) == (
        True,
        "no normalisation of the network depends on the field of view",
    )
