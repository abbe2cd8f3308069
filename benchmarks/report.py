"""Write ``benchmarks/RESULTS.md`` and the FLOPs / memory charts.

``make bench bench-peers && .venv/bin/python -m benchmarks.report`` regenerates everything:
the pytest-benchmark suites (runs saved under ``.benchmarks/``), the interleaved peers run
(``build/bench/peers.json``, with the released code's one-hot loop) and the modeled GPU
roofline (``python -m benchmarks.roofline``, run here in its own process: it needs Triton's
interpreter). The attention charts come from meta-device measurements (no memory, no time),
so they cover sizes where the quadratic blocks cannot run.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

from cga_model.evaluation.plots import pyplot

from .peers import OUT as PEERS_JSON
from .peers import SHAPES as PEER_SHAPES
from .test_attention import SIZES, costs

HERE = Path(__file__).resolve().parent
ROOFLINE_JSON = HERE.parent / "build" / "bench" / "roofline.json"
PEERS = ("reference (one-hot bmm)", "scatter_add_ + gather", "torch_scatter.scatter_mean + gather")
GOAL = {"2x128x16^3": 1.5, "8x128x16^3": 1.5, "2x32x64^3": 2.0}  # fused vs best peer, forward+backward
PAPER_TABLE3 = {"sam": ("0.675", "0.095"), "nonlocal": ("4.495", "0.492"), "contextprior": ("2.284", "0.328")}
NAMES = {"sam": "SAM (ours)", "nonlocal": "non-local (self-attention)", "contextprior": "Context Prior layer"}


def latest_run() -> dict:
    runs = sorted(glob.glob(str(HERE.parent / ".benchmarks" / "*" / "*.json")), key=os.path.getmtime)
    if not runs:
        raise SystemExit("no saved benchmark run: run `make bench` first")
    return json.loads(Path(runs[-1]).read_text())


def _by_name(run: dict) -> dict:
    return {b["name"]: b for b in run["benchmarks"]}


def kernel_section(bench: dict) -> list[str]:
    lines = [
        "## Intra-class update kernels, regression suite (K=4, CPU, medians of the saved pytest-benchmark run)",
        "",
        "Candidates run one after another, not interleaved: for comparisons prefer the interleaved tables above. "
        "Released: its approach with the one-hot loop vectorised (hard masks; soft masks have no one-hot).",
        "",
        "| mask | shape | pass | fused ms | reference ms | released ms | fused vs reference | fused vs released "
        "| roofline fraction | saved bytes fused / reference |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for soft in ("hard", "soft"):
        for shape in PEER_SHAPES:
            for phase in ("fwd", "fwd+bwd"):
                f, r, rel = (
                    bench.get(f"test_intra_update[{phase}-{impl}-{soft}-{shape}]")
                    for impl in ("fused", "reference", "released")
                )
                if not f or not r:
                    continue
                fm, rm = f["stats"]["median"] * 1e3, r["stats"]["median"] * 1e3
                relm = rel["stats"]["median"] * 1e3 if rel else float("nan")
                lines.append(
                    f"| {soft} | {shape} | {phase} | {fm:.1f} | {rm:.1f} | {relm:.1f} | "
                    f"{rm / fm:.2f}x | {relm / fm:.1f}x | "
                    f"{f['extra_info']['roofline_fraction']:.2f} | "
                    f"{f['extra_info']['saved_bytes']:,} / {r['extra_info']['saved_bytes']:,} |"
                )
    return lines


def load_peers() -> dict | None:
    return json.loads(PEERS_JSON.read_text()) if PEERS_JSON.exists() else None


def peers_section(peers: dict) -> list[str]:
    lines = [
        "## Fused op vs what a user would write (hard mask, K=4, forward+backward, interleaved medians)",
        "",
        f"Run of {peers['datetime']} ({peers['machine']}); `make bench-peers`. Every round runs each candidate once "
        "in turn (A B C ... A B C ...); median over the rounds, 25th-75th percentile in brackets. Copy roofline "
        "fraction: the time 6 x-sized passes (the fewest any implementation can make forward+backward) take at the "
        "speed of a plain copy of x measured in the same rounds, divided by the candidate's time. "
        "(torch-scatter 2.1.2's `scatter_mean` is itself `scatter_add_` for the sums and the counts plus a division, "
        "in Python; its compiled kernels serve `scatter_mul`/`min`/`max` and the segment operations.) Page faults: "
        "the median of the minor faults of the process per timed step (the first touches of memory the allocator "
        "gave back to the system and took again).",
        "",
        "| shape | candidate | median ms (p25-p75) | fused is faster by | copy roofline fraction | page faults |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for shape, rows in peers["shapes"].items():
        fused = rows["fused"]["median_ms"]
        for name, r in rows.items():
            frac = f"{r['copy_roofline_fraction']:.2f}" if "copy_roofline_fraction" in r else ""
            speed = f"{r['median_ms'] / fused:.2f}x" if name != "copy of x" else ""
            faults = f"{r['page_faults_per_step']:.0f}" if "page_faults_per_step" in r else ""
            lines.append(
                f"| {shape} | {name} | {r['median_ms']:.2f} ({r['p25_ms']:.2f}-{r['p75_ms']:.2f}) | {speed} | {frac} "
                f"| {faults} |"
            )
    lines += [f"\nNot run: {name}: {why}." for name, why in peers["skipped"].items()]
    return lines + [""] + goal_lines(peers)


def goal_lines(peers: dict) -> list[str]:
    lines = [
        "Goal: fused forward+backward >= 1.5x faster than the best peer (reference, `scatter_add_`, "
        "torch-scatter) at 2x128x16^3 and 8x128x16^3, >= 2x at 2x32x64^3.",
        "",
        "| shape | fused ms | best peer | its ms | fused is faster by | goal | met |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for shape, rows in peers["shapes"].items():
        best = min((n for n in PEERS if n in rows), key=lambda n: rows[n]["median_ms"])
        speed = rows[best]["median_ms"] / rows["fused"]["median_ms"]
        lines.append(
            f"| {shape} | {rows['fused']['median_ms']:.2f} | {best} | {rows[best]['median_ms']:.2f} | {speed:.2f}x | "
            f"{GOAL[shape]:.1f}x | {'yes' if speed >= GOAL[shape] else 'no'} |"
        )
    if peers.get("load_average", 0) > peers.get("cores", 1):
        lines += [
            "",
            f"**Not a verdict:** this run shared the machine (load average {peers['load_average']:.1f} "
            f"on {peers['cores']} cores when it ended); re-run `make bench-peers` on an idle machine.",
        ]
    return lines


def released_section(peers: dict) -> list[str]:
    us = peers["one_hot_loop_us_per_voxel"]
    lines = [
        "## The released code as its users ran it (its Python one-hot loop)",
        "",
        "The released `one_hot` (applied to the attention argmax in every forward) calls `torch.nonzero(labels == k)` "
        "per class and writes one element per returned index in a Python loop; its training loop runs a second such "
        "loop on the down-sampled labels every step (`benchmarks/released.py`, written from that description). "
        f"Measured: **{us:.1f} us per voxel** (random labels 2x16^3, K=4). Forward+backward of the released approach "
        "(interleaved run above); where the loop was not run, its time is the measured time with the loop vectorised "
        "plus the loop's per-voxel cost times the voxels (**extrapolated**).",
        "",
        "| shape | voxels in the mask | released, loop ms | how | released, loop vectorised ms | fused ms "
        "| fused is faster by |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for shape, rows in peers["shapes"].items():
        b, _, size = PEER_SHAPES[shape]
        voxels = b * size**3
        vec = rows["released (vectorised one-hot)"]["median_ms"]
        loop = rows.get("released (Python one-hot loop)")
        loop_ms, how = (loop["median_ms"], "measured") if loop else (vec + us * voxels / 1e3, "extrapolated")
        lines.append(
            f"| {shape} | {voxels:,} | {loop_ms:,.1f} | {how} | {vec:.2f} | {rows['fused']['median_ms']:.2f} | "
            f"{loop_ms / rows['fused']['median_ms']:,.0f}x |"
        )
    step = 2 * 8 * 16**3 * us / 1e3
    return lines + [
        "",
        f"A released training step at the paper's batch of 8 (128^3 crops, 16^3 attention maps) runs the loop "
        f"twice over 8x16^3 voxels: about **{step:,.0f} ms** per step in the loops alone (extrapolated).",
    ]


def load_roofline(reuse: bool = False) -> dict:
    """The modeled roofline, recomputed (minutes: the kernels run in Triton's interpreter) unless its
    saved result is newer than every source it depends on (the kernel package and the model), or
    ``reuse`` (the saved result as it is; the report gives its date)."""
    sources = [*(HERE.parent / "cga_kernels").rglob("*.py"), HERE / "roofline.py", HERE / "peers.py"]
    stale = not ROOFLINE_JSON.exists() or ROOFLINE_JSON.stat().st_mtime < max(p.stat().st_mtime for p in sources)
    if stale and not (reuse and ROOFLINE_JSON.exists()):
        subprocess.run(
            [sys.executable, "-m", "benchmarks.roofline", "--json", str(ROOFLINE_JSON)],
            check=True,
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
        )
    saved = datetime.datetime.fromtimestamp(ROOFLINE_JSON.stat().st_mtime, datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    return {"modeled_at": saved} | json.loads(ROOFLINE_JSON.read_text())


def _us(r: dict | None) -> str:
    return f"{r['A100_us']:.1f} / {r['H100_us']:.1f}" if r else ""


def _mb(r: dict | None) -> str:
    return f"{r['total_bytes'] / 1e6:.1f} ({r['total_bytes'] / r['x_bytes']:.2f})" if r else ""


def roofline_section(roofline: dict) -> list[str]:
    by_key = {(r["impl"], r["op"], r["mask"], r["shape"], r["pass"]): r for r in roofline["rows"]}
    lines = [
        "## Modeled GPU roofline: bytes moved / HBM bandwidth (A100 2.0 TB/s, H100 3.35 TB/s)",
        "",
        "`python -m benchmarks.roofline`. Fused: the Triton kernels' own loads, stores and atomics, counted by running "
        "them in Triton's interpreter with the tile sizes they get on a GPU, plus the torch operations around them. "
        "Reference (one-hot matrix products) and `scatter_add_` + `gather`: eager operations, each reading its inputs "
        "and writing its outputs once. Bytes / bandwidth is a **lower bound** of the time on that GPU: no launch "
        "latency (the launch counts are given; a launch costs microseconds), no re-read served by a cache. "
        "Not measured on a GPU. MB in millions of bytes, x-sized passes in brackets. "
        f"Modeled {roofline.get('modeled_at', '')}.",
        "",
        "| op | mask | shape | pass | fused MB | fused launches | fused us A100 / H100 | reference MB "
        "| reference launches | reference us A100 / H100 | scatter_add_ MB | scatter_add_ us A100 / H100 |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (impl, op, mask, shape, phase), fused in by_key.items():
        if impl != "fused (Triton)":
            continue
        ref_row = by_key.get(("reference (one-hot bmm)", op, mask, shape, phase))
        peer = by_key.get(("scatter_add_ + gather", op, mask, shape, phase))
        launches = lambda r: r["kernel_launches"] + r["eager_launches"]  # noqa: E731
        lines.append(
            f"| {op} | {mask} | {shape} | {phase} | {_mb(fused)} | {launches(fused)} | {_us(fused)} | {_mb(ref_row)} | "
            f"{launches(ref_row)} | {_us(ref_row)} | {_mb(peer)} | {_us(peer)} |"
        )
    neck = by_key[("fused (Triton)", "update", "hard", "8x128x16^3", "fwd+bwd")]
    ref_neck = by_key[("reference (one-hot bmm)", "update", "hard", "8x128x16^3", "fwd+bwd")]
    return lines + [
        "",
        f"At the CGA U-Net's bottleneck (8x128x16^3, hard mask, forward+backward of the intra-class update) the "
        f"fused kernels move {neck['total_bytes'] / 1e6:.1f} MB: at least {neck['A100_us']:.1f} us on an A100 and "
        f"{neck['H100_us']:.1f} us on an H100; the one-hot reference moves {ref_neck['total_bytes'] / 1e6:.1f} MB "
        f"(at least {ref_neck['A100_us']:.1f} / {ref_neck['H100_us']:.1f} us).",
    ]


def attention_section(bench: dict) -> list[str]:
    lines = [
        "## SAM vs non-local vs Context Prior (C=128, K=4, B=1; paper Table 3 at 16^3)",
        "",
        "| block | map | G multiply-adds | paper GFLOPs (= multiply-adds) | params | paper params (M) "
        "| saved for backward | time ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        for name in ("sam", "nonlocal", "contextprior"):
            b = bench.get(f"test_attention_block[{name}-{size}]")
            if not b:
                continue
            e = b["extra_info"]
            paper = PAPER_TABLE3[name] if size == 16 else ("", "")
            t = f"{b['stats']['median'] * 1e3:.0f}" if e["fits"] else e["reason"]
            lines.append(
                f"| {NAMES[name]} | {size}^3 | {e['macs'] / 1e9:.3f} | {paper[0]} | {e['params']:,} | {paper[1]} | "
                f"{e['saved_bytes'] / 2**20:,.1f} MiB | {t} |"
            )
    return lines


def model_section(bench: dict) -> list[str]:
    base, cga = bench.get("test_training_step[baseline]"), bench.get("test_training_step[cga]")
    if not base or not cga:
        return []
    ratio = cga["stats"]["median"] / base["stats"]["median"]
    return [
        "## Whole model: training step at 1x4x64^3 (c=16)",
        "",
        f"baseline {base['stats']['median'] * 1e3:.0f} ms, CGA U-Net {cga['stats']['median'] * 1e3:.0f} ms: "
        f"**{ratio:.3f}x** (target <= 1.03x: {'reached' if ratio <= 1.03 else 'missed'}); "
        f"parameters {base['extra_info']['params']:,} -> {cga['extra_info']['params']:,}.",
    ]


def plot_charts() -> None:
    plt = pyplot()
    sizes = [8, 12, 16, 24, 32, 48, 64]
    data = {name: [costs(name, s) for s in sizes] for name in ("sam", "nonlocal", "contextprior")}
    for key, label, fname in (
        ("macs", "G multiply-adds", "flops_vs_size.png"),
        ("saved_bytes", "GiB saved for backward", "memory_vs_size.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        scale = 1e9 if key == "macs" else 2**30
        for name, rows in data.items():
            ax.plot([s for s in sizes], [r[key] / scale for r in rows], marker="o", label=NAMES[name])
        ax.set_xlabel("feature map edge (map = edge^3, C=128)")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        ax.set_title(f"{label} vs feature-map size (meta-device measurement)")
        fig.tight_layout()
        fig.savefig(HERE / fname, dpi=100)
        plt.close(fig)


RECORDED = "<!-- recorded measurements: the sections below are not written by benchmarks.report -->"


def recorded_measurements() -> list[str]:
    """The hand-recorded part of the current RESULTS.md (from ``RECORDED`` on), kept when the report is rewritten."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    return text[text.index(RECORDED) :].splitlines() if RECORDED in text else []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write benchmarks/RESULTS.md from the saved runs.")
    parser.add_argument(
        "--reuse-roofline",
        action="store_true",
        help="use the saved modeled roofline even when the kernel sources are newer (it takes minutes to recompute)",
    )
    args = parser.parse_args(argv)
    run = latest_run()
    bench = _by_name(run)
    peers = load_peers()
    lines = [
        "# Benchmark results",
        "",
        f"Saved run of {run['datetime']} on {run['machine_info'].get('cpu', {}).get('brand_raw', 'CPU')} "
        f"({run['machine_info'].get('cpu', {}).get('count', '?')} cores); produced by "
        "`make bench bench-peers && .venv/bin/python -m benchmarks.report`.",
        "CPU timings are noisy: compare ratios within one run only.",
        "",
    ]
    sections = (
        [peers_section(peers), released_section(peers)]
        if peers
        else [["`make bench-peers` has not been run: no peers."]]
    )
    for section in sections + [
        roofline_section(load_roofline(args.reuse_roofline)),
        kernel_section(bench),
        attention_section(bench),
        model_section(bench),
    ]:
        lines += section + [""]
    lines += ["![FLOPs](flops_vs_size.png) ![memory](memory_vs_size.png)", ""]
    plot_charts()
    (HERE / "RESULTS.md").write_text("\n".join(lines + recorded_measurements()) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
