"""Ahead-of-time compile check of every Triton kernel for real GPUs, without a GPU.

``python -m cga_kernels.triton.aot [--targets sm_80,sm_90] [--jobs N]``

1. **Which specialisations.** The launchers themselves say: every launcher in
   ``cga_kernels.triton.KERNELS`` is called on its registry row's example arguments
   (``LowLevelOp.aot_example``) as meta-device tensors while ``JITFunction.run`` is
   replaced by a recorder, for every dtype (float16, bfloat16, float32, float64), mask kind,
   atomic/deterministic mode, residual on/off, and one representative ``(K, C, N)`` for each
   distinct answer of the tile chooser (``_tiles.class_pad`` and ``_tiles.tile_sizes``) over
   K in 1..64, C in 1..512 and N from 1 to 2^24. A new launch path is thus checked as soon as
   a launcher takes it. Integer arguments are compiled as i32 (the values the representative
   shapes give) plus one i64 variant per kernel for ``B*C*N >= 2^31``.
2. **Compile.** ``triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))`` lowers each
   one through TTIR, TTGIR, LLVM IR and PTX to a cubin with the ``ptxas`` shipped in the triton
   wheel; its ``-v`` log (Triton's own flags) gives registers and spills.
3. **Judge.** A compile error, any spill, or shared memory beyond the target's per-block
   limit fails the check (exit status 1). Results are cached under ``build/aot/`` by a hash
   of the kernel source, specialisation and target.

What this does not verify: speed and numerics on a device (see README, "GPU kernels").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
import sys
import tempfile
from dataclasses import dataclass

import torch

TARGETS = {"sm_80": (80, 166912), "sm_90": (90, 232448)}
"""name -> (compute capability, shared memory limit per block in bytes: 163 KB on A100, 227 KB on H100)."""

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_PTR = {
    torch.float16: "*fp16",
    torch.bfloat16: "*bf16",
    torch.float32: "*fp32",
    torch.float64: "*fp64",
    torch.int64: "*i64",
    torch.int32: "*i32",
    torch.int8: "*i8",
    torch.uint8: "*u8",
    torch.bool: "*i1",
}
CACHE_DIR = os.path.join("build", "aot")
REPORT_FORMAT = 2  # part of every cache key: bump when the fields of a result change


@dataclass(frozen=True)
class Spec:
    """One kernel specialisation: its kernel (module + name), signature and constexpr values."""

    module: str
    kernel: str
    signature: tuple  # ((arg name, type string), ...)
    constants: tuple  # ((arg name, value), ...)
    num_warps: int

    def label(self) -> str:
        consts = ",".join(f"{k}={_const_str(v)}" for k, v in self.constants)
        ints = "i64" if any(t == "i64" for _, t in self.signature) else "i32"
        return f"{self.kernel}[{_dtype_of(self)},{ints},{consts},warps={self.num_warps}]"

    def key(self, target: str) -> str:
        fn = _kernel_fn(self)
        text = repr(
            (
                REPORT_FORMAT,
                fn.cache_key,
                self.signature,
                [(k, _const_str(v)) for k, v in self.constants],
                self.num_warps,
                target,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def _const_str(value) -> str:
    return str(value).replace("triton.language.", "tl.")


def _dtype_of(spec: Spec) -> str:
    return next((t for _, t in spec.signature if t.startswith("*f") or t.startswith("*b")), "-")


def _kernel_fn(spec: Spec):
    import importlib

    return getattr(importlib.import_module(spec.module), spec.kernel)


def _arg_type(value) -> str:
    if isinstance(value, torch.Tensor):
        return _PTR[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"aot: cannot type launch argument {value!r}")


@contextlib.contextmanager
def recording(out: set):
    """Replace ``JITFunction.run`` by a recorder that adds a :class:`Spec` per launch to ``out``."""
    from triton.runtime.jit import JITFunction

    original = JITFunction.run

    def record(self, *args, grid, warmup, **kwargs):
        num_warps = kwargs.pop("num_warps", 4)
        kwargs.pop("num_stages", None)
        bound = dict(zip(self.arg_names, args)) | kwargs
        const_names = {self.arg_names[i] for i in self.constexprs}
        signature = tuple((n, "constexpr" if n in const_names else _arg_type(bound[n])) for n in self.arg_names)
        constants = tuple((n, bound[n]) for n in self.arg_names if n in const_names)
        out.add(Spec(self.fn.__module__, self.fn.__name__, signature, constants, num_warps))

    JITFunction.run = record
    try:
        yield out
    finally:
        JITFunction.run = original


def tile_representatives() -> list[tuple[int, int, int]]:
    """One ``(K, C, N)`` per distinct answer of the tile chooser (``class_pad(K)``, ``tile_sizes(C, N)``)
    over K 1..64, C 1..512 and N 1..2^24."""
    from . import _tiles

    lengths = sorted({1, 3, 17, 1000, 4097} | {2**p for p in range(25)})
    pads: dict = {}
    for k in range(1, 65):
        pads.setdefault(_tiles.class_pad(k), k)
    tiles: dict = {}
    for c, n in itertools.product(range(1, 513), lengths):
        tiles.setdefault(_tiles.tile_sizes(c, n), (c, n))
    return [(k, c, n) for k in pads.values() for c, n in tiles.values()]


@dataclass(frozen=True)
class MetaTensors:
    """The meta-device tensors a ``LowLevelOp.aot_example`` builds its arguments from: batch 1,
    ``c`` channels, ``n`` voxels, ``k`` classes, features in ``dtype``."""

    k: int
    residual: bool
    x: torch.Tensor  # (1, C, N)
    labels: torch.Tensor  # (1, N) int64
    weights: torch.Tensor  # (1, K, N)
    active: torch.Tensor  # (K,) bool
    proto: torch.Tensor  # (1, K, C)
    counts: torch.Tensor  # (1, K) in the accumulation dtype
    grad_kk: torch.Tensor  # (1, K, K)

    @classmethod
    def of(cls, k: int, c: int, n: int, dtype: torch.dtype, residual: bool) -> MetaTensors:
        from .._math import acc_dtype

        def empty(*shape, dtype=dtype):
            return torch.empty(*shape, dtype=dtype, device="meta")

        return cls(
            k=k,
            residual=residual,
            x=empty(1, c, n),
            labels=empty(1, n, dtype=torch.int64),
            weights=empty(1, k, n),
            active=empty(k, dtype=torch.bool),
            proto=empty(1, k, c),
            counts=empty(1, k, dtype=acc_dtype(dtype)),
            grad_kk=empty(1, k, k),
        )


def _launch_all(k: int, c: int, n: int, dtype: torch.dtype, residual: bool) -> None:
    """Call every launcher of ``KERNELS`` once on its registry row's AOT example
    (``LowLevelOp.aot_example``), on meta tensors of shape ``(B=1, C, N)`` with K classes."""
    from ..registry import low_level_ops
    from . import KERNELS

    tensors = MetaTensors.of(k, c, n, dtype, residual)
    for name, low in low_level_ops().items():
        KERNELS[name](*low.aot_example(tensors))


def specialisations() -> list[Spec]:
    """Every specialisation the launchers produce (see the module docstring), i32 and i64 variants."""
    found: set = set()
    previous = torch.are_deterministic_algorithms_enabled()
    try:
        with recording(found):
            for deterministic, residual, dtype in itertools.product((False, True), (False, True), DTYPES):
                torch.use_deterministic_algorithms(deterministic)
                for k, c, n in tile_representatives():
                    _launch_all(k, c, n, dtype, residual)
    finally:
        torch.use_deterministic_algorithms(previous)
    specs = sorted(found, key=Spec.label)
    return specs + _wide_variants(specs)


def _wide_variants(specs: list[Spec]) -> list[Spec]:
    """Per kernel, the specialisation with the largest constexpr tile again with i64 integer arguments."""
    widest: dict = {}
    for spec in specs:
        size = sum(v for _, v in spec.constants if isinstance(v, int) and not isinstance(v, bool))
        if spec.kernel not in widest or size > widest[spec.kernel][0]:
            widest[spec.kernel] = (size, spec)
    wide = []
    for _, spec in widest.values():
        signature = tuple((n, "i64" if t == "i32" else t) for n, t in spec.signature)
        wide.append(Spec(spec.module, spec.kernel, signature, spec.constants, spec.num_warps))
    return wide


def _ptxas_usage(log: str) -> tuple[int, int]:
    """``(registers, spill store bytes)`` from the ``ptxas -v`` log of Triton's own cubin build."""
    registers = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    if registers is None or spills is None:
        raise RuntimeError(f"no resource usage in the ptxas log: {log.strip()[-300:]!r}")
    return int(registers.group(1)), int(spills.group(1))


@contextlib.contextmanager
def _fresh_triton_cache():
    """An empty Triton cache for one compile: a cache hit would skip ptxas and so its log."""
    import triton

    with tempfile.TemporaryDirectory() as tmp:
        previous = triton.knobs.cache.dir
        triton.knobs.cache.dir = tmp
        try:
            yield
        finally:
            triton.knobs.cache.dir = previous


def compile_one(spec: Spec, target: str) -> dict:
    """Compile ``spec`` for ``target``; returns registers, spills, shared bytes or the error."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    capability, shared_limit = TARGETS[target]
    result = {
        "kernel": spec.kernel,
        "label": spec.label(),
        "target": target,
        "shared_limit": shared_limit,
        "signature": dict(spec.signature),
        "constants": {k: _const_str(v) for k, v in spec.constants},
    }
    triton.knobs.nvidia.dump_ptxas_log = True  # Triton prints the log of its own `ptxas -v` run
    log = io.StringIO()
    try:
        source = ASTSource(_kernel_fn(spec), dict(spec.signature), dict(spec.constants))
        with contextlib.redirect_stdout(log), _fresh_triton_cache():
            compiled = triton.compile(
                source, target=GPUTarget("cuda", capability, 32), options={"num_warps": spec.num_warps}
            )
        result["shared"] = int(compiled.metadata.shared)
        result["registers"], result["spills"] = _ptxas_usage(log.getvalue())
    except Exception as err:  # a compile error is a finding to report, not a crash of the check
        while err.__cause__ is not None:  # Triton wraps the reason in location-only errors
            err = err.__cause__
        result["error"] = f"{type(err).__name__}: {' '.join(str(err).split())[-400:]}"
    return result


def _cached_compile(job: tuple[Spec, str]) -> dict:
    spec, target = job
    path = os.path.join(CACHE_DIR, f"{spec.key(target)}.json")
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    result = compile_one(spec, target)
    if "error" not in result:
        os.makedirs(CACHE_DIR, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump(result, fh)
        os.replace(tmp, path)
    return result


def problems(result: dict) -> list[str]:
    """Why a compiled specialisation fails the check (empty when it passes)."""
    if "error" in result:
        return [result["error"]]
    found = []
    if result["spills"] > 0:
        found.append(f"{result['spills']} bytes of register spills")
    if result["shared"] > result["shared_limit"]:
        found.append(f"shared memory {result['shared']} B > {result['shared_limit']} B per block")
    return found


def run_check(targets: list[str], jobs: int, kernels=None, progress: bool = True) -> list[dict]:
    """Compile every specialisation (of ``kernels``, default all) for every target with ``jobs``
    processes; returns the results."""
    work = [(spec, target) for spec in specialisations() for target in targets if not kernels or spec.kernel in kernels]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(max(1, jobs)) as pool:
        results = pool.imap(_cached_compile, work, chunksize=4)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(work), desc="aot compile", unit="kernel", file=sys.stderr)
        return list(results)


def summary(results: list[dict]) -> str:
    """One line per kernel and target: specialisations, max registers, max spills, max shared memory."""
    rows = [
        "| kernel | target | specialisations | max registers | max spill bytes | max shared B (limit) | failures |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    key = lambda r: (r["kernel"], r["target"])  # noqa: E731
    for (kernel, target), group in itertools.groupby(sorted(results, key=key), key=key):
        group = list(group)
        ok = [r for r in group if "error" not in r]
        failures = sum(1 for r in group if problems(r))
        regs = max((r["registers"] for r in ok), default=0)
        spills = max((r["spills"] for r in ok), default=0)
        shared = max((r["shared"] for r in ok), default=0)
        rows.append(
            f"| {kernel} | {target} | {len(group)} | {regs} | {spills} "
            f"| {shared} ({group[0]['shared_limit']}) | {failures} |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cga_kernels.triton.aot",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--targets", default="sm_80,sm_90", help="comma-separated GPU targets: " + ", ".join(TARGETS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiler processes")
    parser.add_argument("--kernels", default="", help="comma-separated kernel names to check (default: every kernel)")
    parser.add_argument(
        "--report", default=os.path.join(CACHE_DIR, "report.json"), help="where to write every result as JSON"
    )
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        parser.error("unset TRITON_INTERPRET: the interpreter replaces the compiler this check exercises")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {sorted(TARGETS)}")
    results = run_check(targets, args.jobs, kernels={k.strip() for k in args.kernels.split(",") if k.strip()})
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, "w") as fh:
        json.dump(results, fh, indent=1)
    print(summary(results))
    failed = [(r, problems(r)) for r in results if problems(r)]
    for result, why in failed[:50]:
        print(f"FAIL {result['target']} {result['label']}: {'; '.join(why)}")
    print(f"aot: {len(results)} kernel specialisations x targets compiled, {len(failed)} with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
