"""Loading benchmarks: raw ``.nii.gz`` vs the preprocessed cache, at full size (240x240x155).

``python -m benchmarks.loader [--workdir DIR] [--cases 4] [--step-seconds 0.5]`` prints markdown
tables of:

- training-loader throughput (samples/s of 128^3 crops, augmentation included) from raw folders
  and from the cache, at 1 and 2 workers, and the ratio per worker (goal >= 20x);
- peak resident memory (VmHWM) of the loader's main process and of each worker;
- what a GPU needs: samples/s for one 8x128^3 step every ``--step-seconds``, and the workers that
  would take from each source;
- epoch time of a small CPU training from raw vs cache (same seed, same steps; the weights must
  come out identical);
- peak resident memory of ``cga predict`` on one 240x240x155 case at a 128^3 ROI.

The cases come from ``cga_model.data.synth`` at 240x240x155 and are kept in ``--workdir`` (made
once, reused). Timings share the machine with whatever else runs: sources are interleaved
(raw, cache, raw, cache) and the table gives the median of the rounds. The cache is read warm
(its files in the page cache, as after ``cga preprocess`` on a machine with RAM to spare).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cga_model.data.loader import PREFETCH_FACTOR, TrainingCrops, make_loader, open_cases
from cga_model.data.preprocess import preprocess
from cga_model.data.sampling import CropBatchSampler
from cga_model.data.synth import synthesize_cohort
from cga_model.nn.checkpoint import save_checkpoint
from cga_model.nn.config import ModelConfig
from cga_model.nn.network import CGAUNet

FULL_SHAPE = (240, 240, 155)
CROP = (128, 128, 128)
GPU_BATCH = 8
# Measures the peak resident memory of the command in argv[1:] (its own process tree, not ours).
PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def prepare(workdir: Path, cases: int) -> tuple[Path, Path, float]:
    """Full-size raw cases under ``workdir/raw`` and their cache ``workdir/cache`` (made once);
    returns ``(raw, cache, seconds per case of cga preprocess with 2 workers, or nan if reused)``."""
    raw, cache = workdir / "raw", workdir / "cache"
    if not raw.is_dir() or len(list(raw.iterdir())) < cases:
        synthesize_cohort(raw, cases, seed=12, shape=FULL_SHAPE)
    start = time.perf_counter()
    counts = preprocess(raw, cache, workers=2)
    seconds = (time.perf_counter() - start) / counts["written"] if counts["written"] else float("nan")
    return raw, cache, seconds


def peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def loader_rate(path: Path, workers: int, samples: int, batch_size: int = 2) -> dict:
    """Steady-state samples/s of ``TrainingCrops`` at 128^3 over ``samples`` samples, and the peak resident
    memory (MiB) of this process and of each worker. Run it in a fresh process.

    The clock starts when the first ``max(1, workers * PREFETCH_FACTOR)`` batches have arrived: those were made
    while the workers started and filled the prefetch queue (with 2 workers the second worker's first
    batches are made during the first's), so counting them would flatter slow sources at several workers."""
    cases = open_cases(path)
    warm = max(1, workers * PREFETCH_FACTOR)
    ids = (cases.case_ids * math.ceil((samples + warm * batch_size) / len(cases.case_ids)))[
        : samples + warm * batch_size
    ]
    dataset = TrainingCrops(cases, ids, CROP, augment=True)
    loader = make_loader(dataset, CropBatchSampler(cases=len(ids), batch_size=batch_size, seed=0), workers)
    iterator = iter(loader)
    for _ in range(warm):
        next(iterator)
    start, seen = time.perf_counter(), 0
    for batch in iterator:
        seen += len(batch["case_id"])
    seconds = time.perf_counter() - start
    workers_rss = [peak_rss_mib(w.pid) for w in getattr(iterator, "_workers", [])]
    return {"rate": seen / seconds, "main_rss": peak_rss_mib(os.getpid()), "worker_rss": workers_rss}


def loader_rate_in_subprocess(path: Path, workers: int, samples: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.loader", "--measure-loader", str(path), str(workers), str(samples)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.splitlines()[-1])


def throughput_table(raw: Path, cache: Path, rounds: int, raw_samples: int, cache_samples: int) -> tuple[str, dict]:
    """Median samples/s per (source, workers) over interleaved rounds; the markdown table and the medians."""
    runs = {}
    for _ in range(rounds):
        for workers in (1, 2):
            for name, path, samples in (("raw", raw, raw_samples), ("cache", cache, cache_samples)):
                runs.setdefault((name, workers), []).append(loader_rate_in_subprocess(path, workers, samples))
    rate = {key: statistics.median(r["rate"] for r in results) for key, results in runs.items()}
    lines = [
        "| source | workers | samples/s | per worker | cache / raw | main peak RSS MiB | worker peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, workers), results in runs.items():
        ratio = rate[(name, workers)] / rate[("raw", workers)]
        rss = max(results, key=lambda r: r["main_rss"])
        lines.append(
            f"| {name} | {workers} | {rate[(name, workers)]:.2f} | "
            f"{rate[(name, workers)] / workers:.2f} | {ratio:.1f}x | "
            f"{rss['main_rss']:.0f} | {', '.join(f'{m:.0f}' for m in rss['worker_rss'])} |"
        )
    return "\n".join(lines), rate


def gpu_table(rate: dict, step_seconds: float) -> str:
    """Samples/s one GPU step of 8x128^3 every ``step_seconds`` consumes, and the workers each source needs."""
    need = GPU_BATCH / step_seconds
    lines = [
        f"A GPU step of {GPU_BATCH}x128^3 every {step_seconds} s consumes {need:.1f} samples/s.",
        "",
        "| source | samples/s per worker | workers needed |",
        "|---|---:|---:|",
    ]
    for name in ("raw", "cache"):
        per_worker = rate[(name, 1)]
        lines.append(f"| {name} | {per_worker:.2f} | {math.ceil(need / per_worker)} |")
    return "\n".join(lines)


def predict_peak_rss(raw: Path, workdir: Path) -> str:
    """Peak resident memory of ``cga predict`` (default model, untrained weights) on one full-size case, 128^3 ROI."""
    model = ModelConfig()
    checkpoint = workdir / "predict-model.pt"
    save_checkpoint(checkpoint, model=CGAUNet.from_config(model).state_dict(), config={"model": model.to_dict()})
    case = sorted(raw.iterdir())[0]
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "cga_model",
            "predict",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(case),
            "--out",
            out,
            "--roi",
            "128",
            "128",
            "128",
        ]
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_WRAPPER, *command], check=True, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
    kib = int(result.stdout.split()[-1])
    return (
        f"`cga predict` on one {'x'.join(map(str, FULL_SHAPE))} case, ROI 128^3, base {model.base_channels} channels: "
        f"peak RSS {kib / 1024:.0f} MiB ({seconds:.0f} s)"
    )


def training_epoch_times(raw: Path, cache: Path, epochs: int) -> str:
    """Seconds per epoch of the same small CPU training (seed 0, 64^3 crops, batch 2, base 8, 2 workers)
    from raw folders and from the cache, and whether both end with identical weights."""
    from cga_model.training.loop import TrainConfig, train

    seconds, weights = {}, {}
    for name, path in (("raw", raw), ("cache", cache)):
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(
                data=str(path),
                out=out,
                epochs=epochs,
                crop=(64, 64, 64),
                batch_size=2,
                val_fraction=0.0,
                seed=0,
                workers=2,
                model=ModelConfig(base_channels=8),
            )
            start = time.perf_counter()
            model, _ = train(config, progress=False)
            seconds[name] = (time.perf_counter() - start) / epochs
            weights[name] = model.state_dict()
    same = all(torch.equal(weights["raw"][k], weights["cache"][k]) for k in weights["raw"])
    steps = math.ceil(len(open_cases(cache).case_ids) / 2)
    return (
        f"Small CPU training, {epochs} epochs of {steps} steps (64^3 crops, batch 2, base 8 channels, 2 workers): "
        f"{seconds['raw']:.1f} s/epoch from raw, {seconds['cache']:.1f} s/epoch from the cache "
        f"({seconds['raw'] / seconds['cache']:.1f}x); identical final weights: {same}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workdir", default="build/bench-loader", help="where the full-size cases and their cache are kept"
    )
    parser.add_argument("--cases", type=int, default=4, help="full-size cases to synthesise")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the throughput measurement")
    parser.add_argument("--raw-samples", type=int, default=24, help="samples timed per raw measurement")
    parser.add_argument("--cache-samples", type=int, default=200, help="samples timed per cache measurement")
    parser.add_argument("--step-seconds", type=float, default=0.5, help="GPU time of one 8x128^3 training step")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the small training run")
    parser.add_argument(
        "--parts", default="loader,training,predict", help="comma-separated parts to run: loader, training, predict"
    )
    parser.add_argument("--measure-loader", nargs=3, metavar=("PATH", "WORKERS", "SAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_loader:
        path, workers, samples = args.measure_loader
        print(json.dumps(loader_rate(Path(path), int(workers), int(samples))))
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    raw, cache, preprocess_seconds = prepare(workdir, args.cases)
    print(
        f"## Loading 240x240x155 cases ({args.cases} synthetic cases; "
        f"cga preprocess, 2 workers: {preprocess_seconds:.1f} s per case)\n"
    )
    parts = set(args.parts.split(","))
    if "loader" in parts:
        table, rate = throughput_table(raw, cache, args.rounds, args.raw_samples, args.cache_samples)
        print("Training-loader throughput, 128^3 crops with augmentation (median of interleaved rounds):\n")
        print(table + "\n")
        print(gpu_table(rate, args.step_seconds) + "\n")
    if "training" in parts:
        print(training_epoch_times(raw, cache, args.epochs) + "\n")
    if "predict" in parts:
        print(predict_peak_rss(raw, workdir))


if __name__ == "__main__":
    main()
