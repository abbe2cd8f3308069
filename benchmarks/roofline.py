"""A modeled GPU roofline: the bytes each op moves, divided by a GPU's memory bandwidth.

No GPU is needed: the fused ops run on their Triton kernels in Triton's interpreter, with the
GPU tile sizes, and every load, store and atomic the kernels issue is counted (lanes masked
off excluded; an atomic add counts a read and a write). Torch operations around the kernel
launches (validation, zero-filled buffers, the ``(B, K, C)`` prototype arithmetic) are counted
too, as eager operations. An eager operation (those glue operations, the one-hot
matrix-product reference, the ``scatter_add_`` peer) is counted as reading every input tensor
and writing every output tensor once (views move nothing; factory and fill operations only
write; allocations move nothing). ``bytes / bandwidth`` is then a lower bound of the time on that GPU: it ignores launch
latency (a few microseconds per launch on a GPU; the launch counts are given) and assumes
no re-read is served by a cache.

``python -m benchmarks.roofline`` prints the table; ``--json PATH`` also writes it for
``python -m benchmarks.report``. It must run in its own process: the interpreter is selected
by ``TRITON_INTERPRET=1`` before triton is first imported.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is first imported (checked in _check_interpreter)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

GPUS = {"A100": 2.0e12, "H100": 3.35e12}  # HBM bandwidth, bytes/s (A100 40GB SXM; H100 SXM)
K = 4
SHAPES = {"2x128x16^3": (2, 128, 16), "8x128x16^3": (8, 128, 16), "2x32x64^3": (2, 32, 64)}
BOTTLENECK = "8x128x16^3"  # the CGA U-Net's bottleneck at batch 8 (paper recipe), 128^3 crops
MOVE_NOTHING = (
    "empty",
    "empty_like",
    "empty_strided",
    "new_empty",
    "new_empty_strided",
    "detach",
    "lift_fresh",
    "_local_scalar_dense",
)  # allocation, aliasing, host reads
WRITE_ONLY_PREFIXES = ("zeros", "ones", "full", "new_", "fill", "zero_", "scalar_tensor", "arange", "rand")


@dataclass
class Traffic:
    """Bytes moved and launches issued, by the Triton kernels and by eager torch operations."""

    kernel_bytes: int = 0
    kernel_launches: int = 0
    eager_bytes: int = 0
    eager_launches: int = 0
    kernels: dict = field(default_factory=dict)  # kernel name -> bytes

    @property
    def total_bytes(self) -> int:
        return self.kernel_bytes + self.eager_bytes


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of memory a tensor covers (an expanded or strided view counts its storage span once)."""
    if t.numel() == 0:
        return 0
    span = 1 + sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()))
    return min(span, t.numel()) * t.element_size()


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


class EagerTraffic(TorchDispatchMode):
    """Counts eager operations into ``traffic``; a ``cga_triton::`` op is entered, so the torch
    operations of its launcher are counted while its kernels are counted by ``kernel_traffic``."""

    def __init__(self, traffic: Traffic):
        super().__init__()
        self.traffic = traffic

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "cga_triton":  # run its launcher with this mode on
            from cga_kernels.triton import KERNELS

            with self:
                return KERNELS[func._opname](*args, **kwargs)
        out = func(*args, **kwargs)
        name = func.__name__
        if func.is_view or func.namespace == "prim" or name.split(".")[0] in MOVE_NOTHING:
            return out
        reads = (
            0
            if name.startswith(WRITE_ONLY_PREFIXES) or name.split(".")[0].endswith("_like")
            else sum(map(tensor_bytes, _tensors((args, kwargs))))
        )
        self.traffic.eager_bytes += reads + sum(map(tensor_bytes, _tensors(out)))
        self.traffic.eager_launches += 1
        return out


def _element_bytes(ptrs) -> int:
    return ptrs.get_element_ty().primitive_bitwidth // 8


@contextmanager
def kernel_traffic(traffic: Traffic):
    """Count the memory operations of every Triton kernel run by the interpreter into ``traffic``."""
    from triton.runtime import interpreter as it

    builder, fn_cls = it.InterpreterBuilder, it.InterpretedFunction
    saved = {
        name: getattr(builder, name) for name in ("create_masked_load", "create_masked_store", "create_atomic_rmw")
    }
    saved_run = fn_cls.run
    current = ["?"]

    def count(nbytes):
        traffic.kernel_bytes += nbytes
        traffic.kernels[current[0]] = traffic.kernels.get(current[0], 0) + nbytes

    def load(self, ptrs, mask, *rest):
        count(int(mask.data.sum()) * _element_bytes(ptrs))
        return saved["create_masked_load"](self, ptrs, mask, *rest)

    def store(self, ptrs, value, mask, *rest):
        count(int(mask.data.sum()) * _element_bytes(ptrs))
        return saved["create_masked_store"](self, ptrs, value, mask, *rest)

    def atomic(self, op, ptrs, val, mask, *rest):
        count(2 * int(mask.data.sum()) * _element_bytes(ptrs))  # read-modify-write
        return saved["create_atomic_rmw"](self, op, ptrs, val, mask, *rest)

    def run(self, *args, **kwargs):
        current[0] = self.fn.__name__
        traffic.kernel_launches += 1
        with _disable_current_modes():  # the interpreter's own host copies of the arguments are not traffic
            return saved_run(self, *args, **kwargs)

    patches = {"create_masked_load": load, "create_masked_store": store, "create_atomic_rmw": atomic}
    try:
        for name, fn in patches.items():
            setattr(builder, name, fn)
        fn_cls.run = run
        yield traffic
    finally:
        for name, fn in saved.items():
            setattr(builder, name, fn)
        fn_cls.run = saved_run


@contextmanager
def gpu_tiles():
    """The tile sizes the launchers choose on a GPU (the interpreter otherwise picks larger ones)."""
    from cga_kernels.triton import _tiles

    saved = _tiles.interpreting
    _tiles.interpreting = lambda: False
    try:
        yield
    finally:
        _tiles.interpreting = saved


def measure(step: Callable[[], None], triton: bool) -> Traffic:
    """The traffic of one call of ``step`` (kernels traced when ``triton``)."""
    traffic = Traffic()
    if triton:
        with gpu_tiles(), kernel_traffic(traffic), EagerTraffic(traffic):
            step()
    else:
        with EagerTraffic(traffic):
            step()
    return traffic


def _inputs(shape: str, soft: bool, backward: bool):
    """``x (B, C, s^3)``, the mask, prototypes ``(B, K, C)`` and dense upstream gradients."""
    b, c, s = SHAPES[shape]
    torch.manual_seed(0)
    x = torch.randn(b, c, s, s, s, requires_grad=backward)
    mask = torch.rand(b, K, s, s, s, requires_grad=backward) if soft else torch.randint(0, K, (b, s, s, s))
    proto = torch.randn(b, K, c, requires_grad=backward)
    return x, mask, proto, torch.randn_like(x), torch.randn_like(proto)


def op_step(impl, op: str, shape: str, soft: bool, backward: bool) -> Callable[[], None]:
    """One call of ``op`` (``pool``, ``scatter``, ``update``) on ``impl`` (a module of public ops
    or a function ``(x, labels, K) -> (y, proto)`` for the peers), with backward when asked:
    upstream gradients are dense tensors, as inside a network."""
    x, mask, proto, grad_y, grad_p = _inputs(shape, soft, backward)

    def step():
        if op == "pool":
            outs, grads = impl.prototype_pool(x, mask, K)[:1], (grad_p,)
        elif op == "scatter":
            outs, grads = (impl.prototype_scatter(proto, mask),), (grad_y,)
        elif callable(impl):
            outs, grads = impl(x, mask, K), (grad_y, grad_p)
        else:
            outs, grads = impl.intra_class_update(x, mask, K)[:2], (grad_y, grad_p)
        if backward:
            torch.autograd.backward(outs, grads)

    return step


def _row(traffic: Traffic) -> dict:
    row = asdict(traffic) | {"total_bytes": traffic.total_bytes}
    row |= {f"{gpu}_us": traffic.total_bytes / bw * 1e6 for gpu, bw in GPUS.items()}
    return row


def impls() -> dict[str, tuple[object, bool, tuple[str, ...]]]:
    """name -> (implementation, runs Triton kernels, ops it covers)."""
    from cga_kernels import reference, triton_ops

    from .peers import scatter_add_update, torch_scatter_missing, torch_scatter_update

    table = {
        "fused (Triton)": (triton_ops, True, ("pool", "scatter", "update")),
        "reference (one-hot bmm)": (reference, False, ("pool", "scatter", "update")),
        "scatter_add_ + gather": (scatter_add_update, False, ("update",)),
    }
    if not torch_scatter_missing():
        table["torch_scatter.scatter_mean + gather"] = (torch_scatter_update, False, ("update",))
    return table


def model(shapes=tuple(SHAPES)) -> list[dict]:
    """One row per implementation, op, mask, shape and pass."""
    rows = []
    for name, (impl, triton, ops) in impls().items():
        for op in ops:
            for soft in (False,) if callable(impl) else (False, True):
                for shape in shapes:
                    for backward in (False, True):
                        traffic = measure(op_step(impl, op, shape, soft, backward), triton)
                        b, c, s = SHAPES[shape]
                        rows.append(
                            _row(traffic)
                            | {
                                "impl": name,
                                "op": op,
                                "mask": "soft" if soft else "hard",
                                "shape": shape,
                                "pass": "fwd+bwd" if backward else "fwd",
                                "x_bytes": b * c * s**3 * 4,
                            }
                        )
    return rows


def _check_interpreter() -> None:
    from cga_kernels import _library

    if not _library.TRITON_LOADED or os.environ.get("TRITON_INTERPRET") != "1":
        sys.exit(
            "benchmarks.roofline: error: the Triton kernels cannot run in the interpreter here "
            f"({_library.CUDA_DETAIL})"
        )


def markdown(rows: list[dict]) -> list[str]:
    """The rows as a Markdown table: MB moved, launches and the lower-bound microseconds."""
    gpus = " | ".join(f"{g} us" for g in GPUS)
    lines = [
        f"| op | mask | shape | pass | implementation | MB moved | x-sized passes | launches | {gpus} |",
        "|---|---|---|---|---|---:|---:|---:|" + "---:|" * len(GPUS),
    ]
    for r in rows:
        us = " | ".join(f"{r[f'{g}_us']:.1f}" for g in GPUS)
        lines.append(
            f"| {r['op']} | {r['mask']} | {r['shape']} | {r['pass']} | {r['impl']} | {r['total_bytes'] / 1e6:.1f} | "
            f"{r['total_bytes'] / r['x_bytes']:.2f} | {r['kernel_launches'] + r['eager_launches']} | {us} |"
        )
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Modeled GPU roofline of the cga ops (bytes moved / HBM bandwidth).")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    _check_interpreter()
    rows = model(tuple(args.shapes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        tmp.write_text(json.dumps({"modeled_at": when, "gpus_bytes_per_s": GPUS, "rows": rows}, indent=1))
        os.replace(tmp, args.json)
    print("\n".join(markdown(rows)))


if __name__ == "__main__":
    main()
