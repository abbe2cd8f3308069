"""Write ``benchmarks/RESULTS.md`` and the FLOPs / memory charts from the newest saved run.

``python -m benchmarks.report`` after ``make bench`` (which saves runs under ``.benchmarks/``).
The attention charts come from meta-device measurements (no memory, no time), so they cover
sizes where the quadratic blocks cannot run.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from cga_model.evaluation.plots import pyplot

from .test_attention import SIZES, costs

HERE = Path(__file__).resolve().parent
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
    lines = ["## Intra-class update kernels (K=4, CPU, median of the saved run)", "",
             "| mask | shape | pass | fused ms | reference ms | released ms | fused vs reference | fused vs released | roofline fraction | saved bytes fused / reference |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for soft in ("hard", "soft"):
        for shape in ("2x128x16^3", "2x32x64^3"):
            for phase in ("fwd", "fwd+bwd"):
                key = lambda impl: f"test_intra_update[{phase}-{impl}-{soft}-{shape}]"  # noqa: E731
                f, r, rel = (bench.get(key(i)) for i in ("fused", "reference", "released"))
                if not f or not r:
                    continue
                fm, rm = f["stats"]["median"] * 1e3, r["stats"]["median"] * 1e3
                relm = rel["stats"]["median"] * 1e3 if rel else float("nan")
                lines.append(
                    f"| {soft} | {shape} | {phase} | {fm:.1f} | {rm:.1f} | {relm:.1f} | {rm / fm:.2f}x | {relm / fm:.1f}x | "
                    f"{f['extra_info']['roofline_fraction']:.2f} | {f['extra_info']['saved_bytes']:,} / {r['extra_info']['saved_bytes']:,} |"
                )
    return lines


def attention_section(bench: dict) -> list[str]:
    lines = ["## SAM vs non-local vs Context Prior (C=128, K=4, B=1; paper Table 3 at 16^3)", "",
             "| block | map | G multiply-adds | paper GFLOPs (= multiply-adds) | params | paper params (M) | saved for backward | time ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for size in SIZES:
        for name in ("sam", "nonlocal", "contextprior"):
            b = bench.get(f"test_attention_block[{name}-{size}]")
            if not b:
                continue
            e = b["extra_info"]
            paper = PAPER_TABLE3[name] if size == 16 else ("", "")
            t = f"{b['stats']['median'] * 1e3:.0f}" if e["fits"] else e["reason"]
            lines.append(f"| {NAMES[name]} | {size}^3 | {e['macs'] / 1e9:.3f} | {paper[0]} | {e['params']:,} | {paper[1]} | {e['saved_bytes'] / 2**20:,.1f} MiB | {t} |")
    return lines


def model_section(bench: dict) -> list[str]:
    base, cga = bench.get("test_training_step[baseline]"), bench.get("test_training_step[cga]")
    if not base or not cga:
        return []
    ratio = cga["stats"]["median"] / base["stats"]["median"]
    return ["## Whole model: training step at 1x4x64^3 (c=16)", "",
            f"baseline {base['stats']['median'] * 1e3:.0f} ms, CGA U-Net {cga['stats']['median'] * 1e3:.0f} ms: **{ratio:.3f}x** "
            f"(target <= 1.03x: {'reached' if ratio <= 1.03 else 'missed'}); parameters {base['extra_info']['params']:,} -> {cga['extra_info']['params']:,}."]


def plot_charts() -> None:
    plt = pyplot()
    sizes = [8, 12, 16, 24, 32, 48, 64]
    data = {name: [costs(name, s) for s in sizes] for name in ("sam", "nonlocal", "contextprior")}
    for key, label, fname in (("macs", "G multiply-adds", "flops_vs_size.png"), ("saved_bytes", "GiB saved for backward", "memory_vs_size.png")):
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


def main() -> None:
    run = latest_run()
    bench = _by_name(run)
    lines = ["# Benchmark results", "",
             f"Saved run of {run['datetime']} on {run['machine_info'].get('cpu', {}).get('brand_raw', 'CPU')} "
             f"({run['machine_info'].get('cpu', {}).get('count', '?')} cores); produced by `make bench && python -m benchmarks.report`.",
             "CPU timings are noisy: compare ratios within this run only.", ""]
    for section in (kernel_section(bench), attention_section(bench), model_section(bench)):
        lines += section + [""]
    lines += ["![FLOPs](flops_vs_size.png) ![memory](memory_vs_size.png)", ""]
    plot_charts()
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
