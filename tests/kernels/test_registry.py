"""The op registry (``cga_kernels.registry``): every row has every piece, every file of an op
folder has a row, and the compiled library and the Triton modules really provide the kernels
a row names."""

import os
import re

import pytest
import torch

import cga_kernels as ck
from cga_kernels import reference, registry
from cga_kernels._lowlevel import LowLevelOp
from cga_kernels.triton.aot import MetaTensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = pytest.mark.parametrize("row", registry.OPS, ids=[row.name for row in registry.OPS])


def _stems(folder: str, suffix: str, prefix: str = "") -> set[str]:
    names = os.listdir(os.path.join(ROOT, folder))
    return {n[len(prefix) : -len(suffix)] for n in names if n.startswith(prefix) and n.endswith(suffix)}


def _forward(row) -> dict:
    return {name: low for name, low in row.low_level.items() if not name.endswith("_backward")}


def test_every_op_file_has_a_row_and_every_row_its_files():
    names = [row.name for row in registry.OPS]
    assert len(set(names)) == len(names)
    assert _stems("csrc/cpu", ".cpp") == set(names)
    assert _stems("cga_kernels/ops", ".py") - {"__init__"} == set(names)
    assert _stems("cga_kernels/triton", ".py") - {"__init__", "_tiles", "aot"} == set(names)
    assert set(names) <= _stems("tests/kernels", ".py", prefix="test_")


@ROWS
def test_public_functions_are_exported_documented_and_have_a_reference(row):
    assert row.public and row.flop_formulas
    for fn in row.public:
        assert fn.__module__ == f"cga_kernels.ops.{row.name}"
        assert fn.__name__ in ck.__all__ and getattr(ck, fn.__name__).__wrapped__ is fn
        assert "Example::" in fn.__doc__ and "{" not in fn.__doc__.split("Example::")[0]
        assert getattr(reference, fn.__name__).__doc__.endswith(fn.__doc__)
    for formula in row.flop_formulas:
        assert formula.__name__.endswith("_flops") and getattr(ck.flops, formula.__name__) is formula


@ROWS
def test_every_low_level_op_declares_every_piece(row):
    assert row.low_level
    for name, low in row.low_level.items():
        assert isinstance(low, LowLevelOp)
        torch._C.parse_schema(f"cga::{name}{low.schema}")
        assert callable(low.fake) and callable(low.aot_example)
        assert (low.setup_context is None) == (low.backward is None), name
        if name.endswith("_backward"):
            assert low.onnx is None and low.flops is None, f"{name}: backward ops are not exported or counted"
        else:
            assert callable(low.setup_context) and callable(low.backward), f"{name}: no autograd formula"
            assert callable(low.onnx) and callable(low.flops), f"{name}: no ONNX translation or FLOP count"


@ROWS
def test_aot_examples_fit_the_schemas(row):
    """Each AOT example runs through its op's fake kernel on meta tensors."""
    tensors = MetaTensors.of(k=3, c=5, n=7, dtype=torch.float32, residual=True)
    for name, low in row.low_level.items():
        out = getattr(torch.ops.cga, name)(*low.aot_example(tensors))
        assert all(t.device.type == "meta" for t in (out if isinstance(out, tuple) else (out,)))


@ROWS
def test_the_compiled_library_registers_each_cpu_kernel_from_the_rows_file(row):
    with open(os.path.join(ROOT, row.cpu_source)) as fh:
        assert set(re.findall(r'm\.impl\("(\w+)"', fh.read())) == set(row.low_level)
    for name in row.low_level:
        cpu = [line for line in torch._C._dispatch_dump(f"cga::{name}").splitlines() if line.startswith("CPU:")]
        assert len(cpu) == 1 and row.cpu_source in cpu[0], (name, cpu)


@ROWS
def test_the_triton_module_provides_each_launcher(row):
    from cga_kernels.triton import KERNELS

    launchers = row.triton_kernels()
    assert set(launchers) == set(row.low_level)
    for name, launcher in launchers.items():
        assert launcher.__module__ == f"cga_kernels.triton.{row.name}" and KERNELS[name] is launcher
        assert hasattr(torch.ops.cga_triton, name)


def test_onnx_and_flop_tables_cover_exactly_the_forward_ops():
    pytest.importorskip("onnxscript")
    from cga_kernels.onnx import translation_table

    forward = {name for row in registry.OPS for name in _forward(row)}
    assert {op.name() for op in translation_table()} == {f"cga::{name}" for name in forward}
    assert {str(op) for op in ck.flops.flop_counter_mapping()} == {f"cga.{name}" for name in forward}
