"""Parameters and FLOPs of the CGA U-Net variants at a given input size (``python -m cga_model.model_card``).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no memory, no
time); the paper's "FLOPs" are multiply-adds, i.e. half of these. The intra-class update itself
is not counted by FlopCounterMode (a custom op): it is ``~4 B K C N`` FLOPs, negligible here.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from .network import CGAUNet

VARIANTS = {
    "CGA U-Net (rate 8, default)": {},
    "baseline U-Net (no SAM)": {"sam": False},
    "CGA U-Net, attention rate 4": {"attention_rate": 4},
    "CGA U-Net, attention rate 2": {"attention_rate": 2},
}


def count(config: dict, size=(128, 128, 128), batch: int = 1, in_channels: int = 4) -> dict:
    """``{"params", "flops", "macs"}`` of ``CGAUNet(**config)`` on a ``(batch, in_channels, *size)`` input."""
    with torch.device("meta"):
        model = CGAUNet(in_channels=in_channels, **config)
        x = torch.empty(batch, in_channels, *size)
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    return {"params": params, "flops": flops, "macs": flops // 2}


def table(size=(128, 128, 128), batch: int = 1) -> str:
    rows = ["| model | parameters | GFLOPs (FlopCounterMode) | G multiply-adds (paper's convention) |", "|---|---:|---:|---:|"]
    for name, config in VARIANTS.items():
        c = count(config, size, batch)
        rows.append(f"| {name} | {c['params']:,} | {c['flops'] / 1e9:.2f} | {c['macs'] / 1e9:.2f} |")
    rows.append("| paper (CGA U-Net) | 4.77 M | - | 151.12 |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, nargs=3, default=(128, 128, 128))
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"input {args.batch}x4x{'x'.join(map(str, args.size))}\n")
    print(table(tuple(args.size), args.batch))


if __name__ == "__main__":
    main()
