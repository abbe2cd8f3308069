"""One 128^3 window of the CGA U-Net on the CPU: PyTorch (cga:: C++ kernels) vs ONNX Runtime.

The paper's network (base 16 channels, hard masks, random weights with a fixed seed) is exported
with ``cga_model.inference.export.export_onnx``; then, for a ``1 x 4 x 128^3`` input:

- time: PyTorch and ONNX Runtime forwards interleaved in one process (one warm-up each, then
  ``--repeats`` pairs), medians and their ratio; both with their default thread counts;
- peak memory: each runtime in a fresh subprocess that loads the model, runs one window and
  reports its peak resident set (VmHWM), and how far the forward raised it above the
  resident set after loading.

    python -m benchmarks.onnx_runtime [--repeats 5] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.loader import peak_rss_mib
from cga_model import CGAUNet
from cga_model.inference.export import export_onnx
from cga_model.inference.onnx_runtime import OnnxSegmenter
from cga_model.nn.checkpoint import load_model, save_checkpoint

SEED = 0


def _rss_mib() -> float:
    """Current resident set of this process (Linux /proc), MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _runner(runtime: str, path: Path):
    """``image -> logits`` of the exported model in ``runtime`` (``torch``: the checkpoint; ``onnx``: the .onnx)."""
    if runtime == "onnx":
        segmenter = OnnxSegmenter(path.with_suffix(".onnx"))
        return lambda image: segmenter(image).logits
    model, _ = load_model(path.with_suffix(".pt"))
    return lambda image: model(image).logits


def measure_memory(runtime: str, path: Path, size: int) -> dict:
    """In this (fresh) process: load, run one window, and report resident memory in MiB."""
    torch.set_grad_enabled(False)
    run = _runner(runtime, path)
    image = torch.randn(1, 4, size, size, size)
    loaded = _rss_mib()
    run(image)
    peak = peak_rss_mib(os.getpid())  # VmHWM: ru_maxrss would carry the parent's peak over the fork
    return {"runtime": runtime, "loaded_mib": loaded, "peak_mib": peak, "forward_mib": peak - loaded}


def memory_in_subprocess(runtime: str, path: Path, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.onnx_runtime", "--measure-memory", runtime, str(path), "--size", str(size)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved_seconds(path: Path, size: int, repeats: int) -> dict:
    """Median seconds per window of each runtime, alternating them; and their largest logit difference."""
    torch.set_grad_enabled(False)
    runners = {runtime: _runner(runtime, path) for runtime in ("torch", "onnx")}
    image = torch.randn(1, 4, size, size, size)
    logits = {runtime: run(image) for runtime, run in runners.items()}  # warm-up
    times = {runtime: [] for runtime in runners}
    for _ in range(repeats):
        for runtime, run in runners.items():
            start = time.perf_counter()
            run(image)
            times[runtime].append(time.perf_counter() - start)
    medians = {runtime: statistics.median(t) for runtime, t in times.items()}
    return {"median_s": medians, "all_s": times, "max_abs_diff": float((logits["onnx"] - logits["torch"]).abs().max())}


def export_model(folder: Path) -> tuple[Path, float]:
    """The paper's network (seeded random weights) as ``folder/model.pt`` and ``folder/model.onnx``; export seconds."""
    torch.manual_seed(SEED)
    model = CGAUNet().eval()
    save_checkpoint(folder / "model.pt", model=model.state_dict(), config={"model": model.config.to_dict()})
    start = time.perf_counter()
    export_onnx(folder / "model.pt", folder / "model.onnx")
    return folder / "model.pt", time.perf_counter() - start


def report(size: int, repeats: int) -> str:
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        path, export_s = export_model(Path(tmp))
        timing = interleaved_seconds(path, size, repeats)
        memory = {runtime: memory_in_subprocess(runtime, path, size) for runtime in ("torch", "onnx")}
    t, o = timing["median_s"]["torch"], timing["median_s"]["onnx"]
    lines = [
        f"CGA U-Net (base 16, hard masks), one 1x4x{size}^3 window on the CPU; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__} (default threads); "
        f"export took {export_s:.0f} s",
        "| runtime | median s / window | all runs (s) | peak RSS MiB | RSS after loading MiB "
        "| forward raised RSS by MiB |",
        "|---|---|---|---|---|---|",
    ]
    for runtime, name in (("torch", "PyTorch (cga:: C++ kernels)"), ("onnx", "ONNX Runtime (CPU provider)")):
        m = memory[runtime]
        runs = ", ".join(f"{s:.2f}" for s in timing["all_s"][runtime])
        lines.append(
            f"| {name} | {timing['median_s'][runtime]:.2f} | {runs} | {m['peak_mib']:.0f} | "
            f"{m['loaded_mib']:.0f} | {m['forward_mib']:.0f} |"
        )
    lines.append(
        f"ONNX Runtime / PyTorch time: {o / t:.2f}; largest |logit difference| {timing['max_abs_diff']:.1e}; "
        f"{repeats} interleaved repeats after one warm-up each"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per runtime (interleaved)")
    parser.add_argument("--size", type=int, default=128, help="window edge (a multiple of 8, at least 16)")
    parser.add_argument("--measure-memory", nargs=2, metavar=("RUNTIME", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        runtime, path = args.measure_memory
        print(json.dumps(measure_memory(runtime, Path(path), args.size)))
        return
    print(report(args.size, args.repeats))


if __name__ == "__main__":
    main()
