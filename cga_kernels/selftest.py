"""What a user with a GPU runs first: ``python -m cga_kernels.selftest``.

On every available device (CPU, and CUDA when present) it checks the fused operators against
``cga_kernels.reference`` (values and gradients, hard and soft masks, 2-D and 3-D, float32
and float64), times the fused intra-class update against the reference at the CGA U-Net's
bottleneck shape, and on a CUDA machine compiles every Triton kernel for the local GPU's
architecture (``cga_kernels.triton.aot``) and reports registers, spills and shared memory.
It ends with a one-page summary and exit status 1 if any check failed. What it cannot do on
this machine (no CUDA device, no C++ library) is listed with the reason, never hidden.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

import cga_kernels as ck
from cga_kernels import reference

CASES = (  # (name, features shape (B, C, *S), K, mask kind)
    ("3-D hard", (2, 16, 6, 5, 7), 4, "hard"),
    ("3-D soft", (2, 16, 6, 5, 7), 4, "soft"),
    ("2-D hard, K=9", (3, 8, 11, 13), 9, "hard"),
    ("2-D soft, K=9", (3, 8, 11, 13), 9, "soft"),
)
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}
BOTTLENECK = (2, 128, 16, 16, 16)


@dataclass
class Line:
    """One row of the summary: what was checked, where, and the outcome."""

    section: str
    what: str
    outcome: str  # "ok", "FAIL ...", "skipped: ..." or a measurement
    failed: bool = False


def _mask(kind: str, shape: tuple, classes: int, device: str, dtype: torch.dtype, generator: torch.Generator):
    batch, spatial = shape[0], shape[2:]
    if kind == "hard":
        return torch.randint(0, classes, (batch, *spatial), generator=generator).to(device)
    return torch.rand(batch, classes, *spatial, generator=generator, dtype=dtype).to(device).requires_grad_()


def _max_error(fused, ref) -> float:
    return max(
        float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0 for a, b in zip(fused, ref)
    )


def check_case(device: str, shape: tuple, classes: int, kind: str, dtype: torch.dtype) -> float:
    """Largest absolute difference of values and gradients of ``intra_class_update`` (then the
    inter-class loss on its prototypes) between the fused op and the reference."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen, dtype=dtype).to(device).requires_grad_()
    mask = _mask(kind, shape, classes, device, dtype, gen)
    outputs, grads = [], []
    for impl in (ck, reference):
        y, proto, counts = impl.intra_class_update(x, mask, num_classes=classes if kind == "hard" else None)
        loss = (y * y.detach().sin()).sum() + impl.inter_class_loss(proto, counts)
        inputs = [x] + ([mask] if kind == "soft" else [])
        outputs.append((y, proto, counts))
        grads.append(torch.autograd.grad(loss, inputs))
    return max(_max_error(*outputs), _max_error(*grads))


def check_values(device: str) -> list[Line]:
    lines = []
    for name, shape, classes, kind in CASES:
        for dtype in (torch.float32, torch.float64):
            try:
                err = check_case(device, shape, classes, kind, dtype)
                bad = not err <= TOLERANCE[dtype]
                outcome = (
                    f"{'FAIL' if bad else 'ok'} (max |fused - reference| = {err:.1e}, tolerance {TOLERANCE[dtype]:.0e})"
                )
            except Exception as exc:  # a crash is a failed check, reported with its message
                bad, outcome = True, f"FAIL {type(exc).__name__}: {exc}"
            lines.append(
                Line(f"values+gradients on {device}", f"{name}, {str(dtype).replace('torch.', '')}", outcome, bad)
            )
    return lines


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_bottleneck(device: str, repeats: int) -> list[Line]:
    """Forward+backward of the hard-mask update at 2x128x16^3, K=4: fused vs reference, interleaved."""
    x = torch.randn(*BOTTLENECK, device=device, requires_grad=True)
    labels = torch.randint(0, 4, (BOTTLENECK[0], *BOTTLENECK[2:]), device=device)

    def step(impl):
        y, _, _ = impl.intra_class_update(x, labels, num_classes=4)
        y.sum().backward()

    medians = {"fused": [], "reference": []}
    for _ in range(3):  # interleaved rounds: fused, reference, fused, reference, ...
        medians["fused"].append(_median_ms(lambda: step(ck), repeats))
        medians["reference"].append(_median_ms(lambda: step(reference), repeats))
    fused, ref = min(medians["fused"]), min(medians["reference"])
    shape = "x".join(map(str, BOTTLENECK))
    return [
        Line(
            f"timing on {device}",
            f"intra_class_update fwd+bwd, hard, {shape}, K=4",
            f"fused {fused:.2f} ms, reference {ref:.2f} ms: {ref / fused:.2f}x",
        )
    ]


def aot_lines() -> list[Line]:
    """Compile every Triton kernel for the local GPU (a subprocess: no interpreter there)."""
    if not torch.cuda.is_available():
        return [
            Line(
                "GPU compile check",
                "Triton kernels for the local GPU",
                "skipped: no CUDA device; `python -m cga_kernels.triton.aot` checks sm_80 and sm_90 without one",
            )
        ]
    major, minor = torch.cuda.get_device_capability()
    target = f"sm_{major}{minor}"
    from cga_kernels.triton.aot import TARGETS

    if target not in TARGETS:
        return [
            Line(
                "GPU compile check",
                target,
                f"skipped: no shared-memory limit recorded for {target}; known: {sorted(TARGETS)}",
            )
        ]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run(
        [sys.executable, "-m", "cga_kernels.triton.aot", "--targets", target], env=env, capture_output=True, text=True
    )
    last = (run.stdout.strip().splitlines() or ["no output"])[-1]
    return [
        Line(
            "GPU compile check",
            f"every Triton kernel for {target}",
            ("ok " if run.returncode == 0 else "FAIL ") + last,
            run.returncode != 0,
        )
    ]


def devices() -> tuple[list[str], list[Line]]:
    """The devices to check and a line for each one that cannot be checked here, with the reason."""
    status = ck.backend()
    found, skipped = [], []
    if str(status.get("cpu", "")).startswith("compiled"):
        found.append("cpu")
    else:
        skipped.append(Line("devices", "cpu", f"skipped: {status.get('cpu')}"))
    if torch.cuda.is_available():
        found.append("cuda")
    else:
        skipped.append(Line("devices", "cuda", "skipped: no CUDA device (torch.cuda.is_available() is False)"))
    return found, skipped


def summary(lines: list[Line]) -> str:
    width = max(len(f"{line.section}: {line.what}") for line in lines)
    rows = [f"cga_kernels self-test (torch {torch.__version__}; backend {ck.backend()})", ""]
    rows += [f"{(line.section + ': ' + line.what).ljust(width)}  {line.outcome}" for line in lines]
    failed = sum(line.failed for line in lines)
    rows += [
        "",
        f"{failed} of {len(lines)} checks FAILED"
        if failed
        else f"all {len(lines)} checks passed or skipped with a reason",
    ]
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cga_kernels.selftest",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per round (3 interleaved rounds)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    found, lines = devices()
    for device in found:
        lines += check_values(device)
        lines += time_bottleneck(device, args.repeats)
    lines += aot_lines()
    print(summary(lines))
    return 1 if any(line.failed for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
