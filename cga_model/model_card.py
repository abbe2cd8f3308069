"""Parameters and FLOPs of the CGA U-Net variants (``python -m cga_model.model_card [--size D H W]``).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` running the model on the *meta*
device (shapes only: no memory, no time; the ``cga::`` ops have fake kernels). FlopCounterMode
counts convolutions (2 FLOPs per multiply-add, bias, norms and activations not counted); the
paper's "FLOPs" are multiply-adds, i.e. half of that. The ``cga::`` custom ops are counted
with their formulas in ``cga_kernels.flops`` (through ``cga_model.nn.cost``).
"""

from __future__ import annotations

import argparse

import torch

from .nn.config import ModelConfig
from .nn.cost import flop_counter, params_of
from .nn.network import CGAUNet

VARIANTS = {
    "CGA U-Net (rate 8, default)": {},
    "baseline U-Net (sam=False)": {"sam": False},
    "CGA U-Net, attention rate 4": {"attention_rate": 4},
    "CGA U-Net, attention rate 2": {"attention_rate": 2},
    "CGA U-Net, soft mask (rate 8)": {"mask_mode": "soft"},
}

# the paper's numbers (Table 3 for the SAM, section 4.3 for the whole network), in multiply-adds
PAPER = {"gmacs": 151.12, "sam": {8: (0.675, 0.095e6), 4: (1.97, 0.034e6), 2: (2.89, 0.01e6)}}


def count(config: dict, *, size=(128, 128, 128), batch: int = 1, in_channels: int = 4) -> dict:
    """Parameters and FLOPs of ``CGAUNet(**config)`` on a ``(batch, in_channels, *size)`` input.

    Returns ``params``, ``sam_params`` (attention path), ``flops`` (FlopCounterMode),
    ``macs`` (= flops / 2, the paper's convention), ``sam_flops`` (everything inside the SAM:
    attention convs + update) and ``cga_op_flops`` (the custom ops alone).
    """
    with torch.device("meta"):
        model = CGAUNet(ModelConfig(in_channels=in_channels, **config))
        x = torch.empty(batch, in_channels, *size)
    params = params_of(model)
    sam_params = params_of(model.sam) if model.sam is not None else 0
    with torch.no_grad(), flop_counter() as counter:
        model(x)
    flops = counter.get_total_flops()
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    sam_flops = sum(per_module.get(f"{root}.sam", {}).values())
    cga_flops = sum(v for op, v in per_module.get("Global", {}).items() if "cga" in str(op))
    return {
        "params": params,
        "sam_params": sam_params,
        "flops": flops,
        "macs": flops / 2,
        "sam_flops": sam_flops,
        "cga_op_flops": cga_flops,
    }


def table(size=(128, 128, 128), batch: int = 1, variants=None) -> str:
    """The markdown model card."""
    variants = VARIANTS if variants is None else variants
    rows = [
        "| model | parameters | of which SAM | GFLOPs (FlopCounterMode) | G multiply-adds (paper's convention) "
        "| SAM G multiply-adds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, config in variants.items():
        c = count(config, size=size, batch=batch)
        rows.append(
            f"| {name} | {c['params']:,} | {c['sam_params']:,} | {c['flops'] / 1e9:.2f} | {c['macs'] / 1e9:.2f} | "
            f"{c['sam_flops'] / 2e9:.3f} |"
        )
    if tuple(size) == (128, 128, 128) and batch == 1:
        rows.append(
            "| paper: CGA U-Net (sec. 4.3) | 4.77 M | 0.095 M (Table 3) | - | "
            f"{PAPER['gmacs']} | {PAPER['sam'][8][0]} |"
        )
        for rate in (4, 2):
            gmacs, p = PAPER["sam"][rate]
            rows.append(f"| paper: SAM at rate {rate} (Table 3) | - | {p / 1e6:g} M | - | - | {gmacs} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="Parameters and FLOPs of the CGA U-Net variants (FlopCounterMode, meta device)."
    )
    parser.add_argument("--size", type=int, nargs=3, default=(128, 128, 128), metavar=("D", "H", "W"))
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"input {args.batch} x 4 x {' x '.join(map(str, args.size))}\n")
    print(table(tuple(args.size), args.batch))


if __name__ == "__main__":
    main()
