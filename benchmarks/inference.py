"""Inference on a full-size case: seconds and peak memory per way of running the network, and the compute limit.

``python -m benchmarks.inference [--base 8 16] [--repeats 2] [--seed 0]``

One hard full-size synthetic case (240x240x155, ``cga synth --full-size --difficulty hard``),
normalised as ``cga predict`` does, segmented by a CGA U-Net (random weights: the time does not
depend on them) in each of these ways, each in a process of its own (so its peak RSS is its own),
candidates interleaved (A B C ... A B C ...). Every candidate but ``default`` runs the network with
GroupNorm (``--norm gn``, the released code's normalisation):

- ``windows``: 128^3 windows at overlap 0.5, Gaussian blending: ``cga predict``'s default path for a
  GroupNorm network;
- ``default``: the default network (BatchNorm) as ``cga predict`` runs it: the whole box in one pass, with
  channels-last-3d weights on the CPU (``cga_model.nn.layout``) and its blocks fused
  (``cga_model.nn.inference_fusion``);
- ``default_unfused``: the same without the block fusion (what the fusion saves);
- ``whole_box``: the whole brain box in one pass when it fits (``--whole-box``);
- ``whole_box_tta8``: the whole box with the 8 flips batched (``--whole-box --tta 8``);
- ``monai``: MONAI's ``sliding_window_inference`` at its defaults (overlap 0.25, constant blending,
  one window a batch) with 128^3 windows, over the brain box;
- ``nnunet_like``: nnU-Net's defaults as windows: 128^3 at step 0.5 with the 8 mirror flips.

The compute limit: the multiply-adds of one forward pass over the padded brain box
(``FlopCounterMode``), over the multiply-adds per second oneDNN reaches on the network's largest
convolution (the first level's 3x3x3 ``c -> c`` convolution over the box) on this machine, in the faster
of the two layouts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

CANDIDATES = ("windows", "default", "default_unfused", "whole_box", "whole_box_tta8", "monai", "nnunet_like")
WINDOW = (128, 128, 128)
NORM_OF = {"default": "bn", "default_unfused": "bn"}  # each candidate's normalisation: GroupNorm unless named here
UNFUSED = ("default_unfused",)  # candidates whose network runs without inference_fusion's fused blocks


def hard_case(seed: int) -> torch.Tensor:
    """The normalised image ``(4, 240, 240, 155)`` float32 of hard full-size synthetic case ``seed``."""
    from cga_model.data.cases import normalize
    from cga_model.data.synth_hard import synthesize_hard_case

    images, _ = synthesize_hard_case(seed)
    return torch.from_numpy(normalize(images))


def model_of(base: int, norm: str = "gn", fused: bool = True):
    """The CGA U-Net at ``base`` width with ``norm`` (random weights, seed 0) as ``cga predict`` runs it on the
    CPU, its SAM pooling prototypes over ``cga predict``'s default field (``fused=False``: in its fast layout,
    without the fused blocks)."""
    from cga_model.nn.config import ModelConfig
    from cga_model.nn.inference_fusion import for_inference
    from cga_model.nn.layout import to_fast_layout
    from cga_model.nn.network import CGAUNet
    from cga_model.nn.prototype_field import pool_prototypes_as_trained

    torch.manual_seed(0)
    network = CGAUNet(ModelConfig(base_channels=base, norm=norm)).eval()
    pool_prototypes_as_trained(network, {}, "a new network")
    return for_inference(network, "cpu") if fused else to_fast_layout(network, "cpu")


def monai_labels(model, image: torch.Tensor) -> torch.Tensor:
    """Labels by MONAI's ``sliding_window_inference`` at its defaults over the brain box (outside: background)."""
    from monai.inferers import sliding_window_inference

    from cga_model.data.brain import brain_box

    brain = (image != 0).any(0)
    box = tuple(slice(a, b) for a, b in brain_box(brain.numpy()))
    labels = torch.zeros(image.shape[1:], dtype=torch.uint8)
    with torch.no_grad():
        logits = sliding_window_inference(image[(slice(None),) + box][None], WINDOW, 1, lambda x: model(x).logits)
    labels[box] = logits[0].argmax(0).to(torch.uint8)
    labels[~brain] = 0
    return labels


def segment(candidate: str, model, image: torch.Tensor) -> torch.Tensor:
    """Class indices ``(240, 240, 155)`` of ``image`` by ``candidate``."""
    from cga_model.nn.sliding_window import segment_labels

    windows = {"roi": WINDOW, "overlap": 0.5}
    options = {
        "windows": windows,
        "whole_box": {"whole_box": True},
        "whole_box_tta8": {"whole_box": True, "tta": 8},
        "nnunet_like": {**windows, "tta": 8},
        "default": {},  # the path cga predict takes for the network (the whole box for BatchNorm)
        "default_unfused": {},
    }
    if candidate == "monai":
        return monai_labels(model, image)
    return segment_labels(model, image, log=lambda line: None, **options[candidate])


def child(candidate: str, base: int, seed: int) -> None:
    """Run one candidate once and print ``{"seconds": ...}`` (the segmentation alone, not the set-up)."""
    image, model = hard_case(seed), model_of(base, NORM_OF.get(candidate, "gn"), candidate not in UNFUSED)
    start = time.perf_counter()
    segment(candidate, model, image)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_child(candidate: str, base: int, seed: int) -> dict:
    """One candidate in a fresh process: its seconds and its peak RSS in GB (``wait4``)."""
    args = [
        sys.executable,
        "-m",
        "benchmarks.inference",
        "--child",
        candidate,
        "--base",
        str(base),
        "--seed",
        str(seed),
    ]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{candidate} at base {base} failed (exit {process.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_gb": usage.ru_maxrss / 2**20}


@torch.no_grad()
def _conv_seconds(conv: torch.nn.Conv3d, box, layout: torch.memory_format) -> float:
    """Seconds of ``conv`` over a ``(1, C, *box)`` input, weights and input in ``layout`` (after a warm-up)."""
    conv = conv.to(memory_format=layout)
    x = torch.randn(1, conv.in_channels, *box).contiguous(memory_format=layout)
    conv(x)
    start = time.perf_counter()
    conv(x)
    return time.perf_counter() - start


def compute_limit(base: int, seed: int) -> dict:
    """Multiply-adds of one forward pass over the padded brain box, conv throughput, the time they imply."""
    from cga_model.data.brain import brain_box
    from cga_model.nn.cost import flops_of

    image = hard_case(seed)
    box = [b - a for a, b in brain_box((image != 0).any(0).numpy())]
    box = [s + (-s) % 8 for s in box]
    with torch.device("meta"):
        meta_model = model_of(base, fused=False)  # FlopCounterMode counts aten convolutions, not oneDNN's
        macs = flops_of(lambda x: meta_model(x), torch.empty(1, 4, *box)) / 2
    conv = torch.nn.Conv3d(base, base, 3, padding=1).eval()
    seconds = min(_conv_seconds(conv, box, layout) for layout in (torch.contiguous_format, torch.channels_last_3d))
    throughput = base * base * 27 * math.prod(box) / seconds
    return {"box": box, "gmacs": macs / 1e9, "conv_gmacs_per_s": throughput / 1e9, "limit_s": macs / throughput}


def measure(bases, repeats: int, seed: int, candidates=CANDIDATES) -> list:
    """Rows ``{"candidate", "base", "seconds", "peak_rss_gb"}``: every candidate ``repeats`` times, interleaved."""
    rows = []
    for _ in range(repeats):
        for base in bases:
            for candidate in candidates:
                rows.append({"candidate": candidate, "base": base, **run_child(candidate, base, seed)})
    return rows


def format_rows(rows: list, limits: dict) -> str:
    """Markdown: median seconds and peak RSS per candidate and base, speed-up over ``windows``, the limit."""
    lines = [
        "| base | candidate | seconds (median) | peak RSS GB | x faster than windows |",
        "|---:|---|---:|---:|---:|",
    ]
    for base in sorted({r["base"] for r in rows}):
        medians = {}
        for candidate in dict.fromkeys(r["candidate"] for r in rows):
            runs = [r for r in rows if r["base"] == base and r["candidate"] == candidate]
            medians[candidate] = (np.median([r["seconds"] for r in runs]), max(r["peak_rss_gb"] for r in runs))
        for candidate, (seconds, rss) in medians.items():
            speed = medians["windows"][0] / seconds if "windows" in medians else float("nan")
            lines.append(f"| {base} | {candidate} | {seconds:.1f} | {rss:.2f} | {speed:.1f} |")
        limit = limits[base]
        lines.append(
            f"| {base} | compute limit: {limit['gmacs']:.0f} G multiply-adds over the box {limit['box']} at "
            f"{limit['conv_gmacs_per_s']:.0f} G/s | {limit['limit_s']:.1f} | | |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, nargs="+", default=[8, 16], help="base widths of the network")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every candidate (interleaved)")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic case")
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument("--child", choices=CANDIDATES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.base[0], args.seed)
    rows = measure(args.base, args.repeats, args.seed, args.candidates)
    limits = {base: compute_limit(base, args.seed) for base in args.base}
    print(format_rows(rows, limits))


if __name__ == "__main__":
    main()
