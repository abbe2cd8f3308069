"""What a user would write instead of the fused op, timed against it interleaved in one run.

Peers of ``intra_class_update`` (hard mask, residual; each returns ``(y (B, C, *S), proto (B, K, C))``):
the one-hot matrix-product reference (``cga_kernels.reference``), native ``scatter_add_`` +
``gather``, ``torch_scatter.scatter_mean`` + ``gather`` (optional: ``pip install
--no-build-isolation torch-scatter==2.1.2``, ``make bench-peers``), and the released code's
approach (``benchmarks/released.py``; with its Python one-hot loop only at the bottleneck shape,
where it runs in well under a second).

``python -m benchmarks.peers`` runs forward+backward of every candidate in rounds
(A B C ... A B C ...: this machine's speed drifts, so every candidate sees the same drift),
with a plain copy of x in each round for the memory roofline, and writes the medians to
``build/bench/peers.json`` (read by ``python -m benchmarks.report``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import cga_kernels as ck
from cga_kernels import reference as ref

from .released import one_hot_loop_seconds_per_voxel, released_intra_update, vectorised_one_hot

K = 4
SHAPES = {"2x128x16^3": (2, 128, 16), "8x128x16^3": (8, 128, 16), "2x32x64^3": (2, 32, 64)}
ROUNDS = {"2x128x16^3": 30, "8x128x16^3": 15, "2x32x64^3": 7}
LOOP_SHAPES = ("2x128x16^3",)  # where the released Python loop is run rather than extrapolated
OUT = Path(__file__).resolve().parent.parent / "build" / "bench" / "peers.json"
TORCH_SCATTER_MISSING = (
    "torch_scatter is not installed (no wheel for this torch; `make bench-peers` builds it from source in ~5 min)"
)


def _flat_index(x: torch.Tensor, labels: torch.Tensor):
    """``(x (B, C, N), index (B, C, N))``: the label of every voxel, repeated over channels."""
    b, c = x.shape[:2]
    return x.reshape(b, c, -1), labels.reshape(b, 1, -1).expand(b, c, -1)


def scatter_add_update(x: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """Class means by ``scatter_add_`` (sums and counts), scattered back by ``gather``."""
    flat, index = _flat_index(x, labels)
    sums = flat.new_zeros(flat.shape[0], flat.shape[1], num_classes).scatter_add_(2, index, flat)
    counts = flat.new_zeros(flat.shape[0], 1, num_classes).scatter_add_(2, index[:, :1], torch.ones_like(flat[:, :1]))
    proto = sums / counts.clamp_min(1)  # (B, C, K)
    return (flat + proto.gather(2, index)).reshape(x.shape), proto.transpose(1, 2)


def torch_scatter_update(x: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """Class means by ``torch_scatter.scatter_mean``, scattered back by ``gather``."""
    from torch_scatter import scatter_mean

    flat, index = _flat_index(x, labels)
    proto = scatter_mean(flat, index, dim=2, dim_size=num_classes)  # (B, C, K)
    return (flat + proto.gather(2, index)).reshape(x.shape), proto.transpose(1, 2)


def torch_scatter_missing() -> str | None:
    """Why ``torch_scatter`` cannot be used here, or None when it can."""
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        return TORCH_SCATTER_MISSING
    return None


CANDIDATES: dict[str, Callable] = {
    "fused": lambda x, m: ck.intra_class_update(x, m, K)[:2],
    "reference (one-hot bmm)": lambda x, m: ref.intra_class_update(x, m, K)[:2],
    "scatter_add_ + gather": lambda x, m: scatter_add_update(x, m, K),
    "torch_scatter.scatter_mean + gather": lambda x, m: torch_scatter_update(x, m, K),
    "released (vectorised one-hot)": lambda x, m: released_intra_update(x, m, K, one_hot=vectorised_one_hot),
    "released (Python one-hot loop)": lambda x, m: released_intra_update(x, m, K),
}


def make_inputs(shape: str):
    """``x (B, C, s, s, s)`` requiring grad and random labels ``(B, s, s, s)`` in ``[0, K)``."""
    b, c, s = SHAPES[shape]
    torch.manual_seed(0)
    return torch.randn(b, c, s, s, s, requires_grad=True), torch.randint(0, K, (b, s, s, s))


def forward_backward(fn: Callable, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One forward+backward step of ``fn`` (gradient of ``y.sum() + proto.sum()``)."""

    def step():
        x.grad = None
        y, proto = fn(x, labels)
        (y.sum() + proto.sum()).backward()

    return step


def interleaved_times(steps: dict[str, Callable[[], None]], rounds: int) -> tuple[dict, dict]:
    """Seconds and minor page faults of every step in ``rounds`` rounds, each round running every step once in
    turn (after one untimed warm-up round): ``({name: [seconds]}, {name: [faults]})``. The faults are the first
    touches of memory the allocator had handed back to the system (glibc trims its heap when the other
    candidates free theirs), which a step pays for in its time."""
    times = {name: [] for name in steps}
    faults = {name: [] for name in steps}
    for r in range(rounds + 1):
        for name, step in steps.items():
            touched = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            step()
            if r:
                times[name].append(time.perf_counter() - start)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - touched)
    return times, faults


def _summary(seconds: list[float]) -> dict:
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return {
        "median_ms": statistics.median(seconds) * 1e3,
        "p25_ms": q[0] * 1e3,
        "p75_ms": q[2] * 1e3,
        "rounds": len(seconds),
    }


def run_shape(shape: str, rounds: int, skipped: dict[str, str]) -> dict:
    """Interleaved forward+backward medians at ``shape``, the copy of x included."""
    x, labels = make_inputs(shape)
    names = [
        n for n in CANDIDATES if n not in skipped and (n != "released (Python one-hot loop)" or shape in LOOP_SHAPES)
    ]
    steps = {n: forward_backward(CANDIDATES[n], x, labels) for n in names}
    steps["copy of x"] = lambda: x.detach().clone()
    times, faults = interleaved_times(steps, rounds)
    result = {
        name: {**_summary(t), "page_faults_per_step": statistics.median(faults[name])} for name, t in times.items()
    }
    copy = result["copy of x"]["median_ms"]
    for name in names:  # any implementation moves >= 6 x-sized passes forward+backward; a copy moves 2
        result[name]["copy_roofline_fraction"] = 3 * copy / result[name]["median_ms"]
    return result


def run(shapes: list[str], scale: float) -> dict:
    """Every shape in turn; the released loop's per-voxel cost; what was skipped and why."""
    missing = torch_scatter_missing()
    skipped = {"torch_scatter.scatter_mean + gather": missing} if missing else {}
    results = {s: run_shape(s, max(3, round(ROUNDS[s] * scale)), skipped) for s in shapes}
    return {
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at the end",
        "load_average": os.getloadavg()[0],  # runnable processes (1-min average) when the run ended
        "cores": os.cpu_count(),
        "backend": ck.backend(),
        "shapes": results,
        "skipped": skipped,
        "one_hot_loop_us_per_voxel": one_hot_loop_seconds_per_voxel() * 1e6,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of rounds per shape")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = run(args.shapes, args.scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)
    for shape, rows in result["shapes"].items():
        for name, r in rows.items():
            roofline = r.get("copy_roofline_fraction", float("nan"))
            print(
                f"{shape:12s} {name:38s} {r['median_ms']:9.2f} ms  roofline {roofline:.2f}  "
                f"page faults {r['page_faults_per_step']:.0f}"
            )
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"released one-hot loop: {result['one_hot_loop_us_per_voxel']:.1f} us per voxel; wrote {args.out}")


if __name__ == "__main__":
    main()
