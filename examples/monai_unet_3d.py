"""Category-guided attention at the bottleneck of a MONAI 3-D UNet, trained a few steps on synthetic
BraTS-like data. ``python -m examples.monai_unet_3d`` (needs ``pip install .[monai]``)."""

from __future__ import annotations

import torch
from monai.networks.nets import UNet

from cga_model.nn.dropin import CategoryGuidedAttention

from .common import synthetic_batch, train_steps

BOTTLENECK = "model.1.submodule.1.submodule.1.submodule"  # 64 channels at 1/8 resolution


def make_unet() -> UNet:
    return UNet(spatial_dims=3, in_channels=4, out_channels=4, channels=(8, 16, 32, 64), strides=(2, 2, 2))


def make_wrapped(mode: str = "hard") -> CategoryGuidedAttention:
    return CategoryGuidedAttention(
        make_unet(), BOTTLENECK, num_classes=4, head="input", in_channels=4, rate=8, mode=mode
    )


def train(steps: int = 8, mode: str = "hard", seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    x, y = synthetic_batch(seed=seed)
    return train_steps(make_wrapped(mode), x, y, steps=steps, seed=seed)


if __name__ == "__main__":
    from .common import compare

    print("losses:", [round(v, 3) for v in train()])
    host, wrapped = make_unet(), make_wrapped()
    print("| network | parameters | GFLOPs (forward) | saved for backward |\n|---|---|---|---|")
    print(compare("MONAI UNet 3-D, 2x4x32^3", host=host, wrapped=wrapped, x=synthetic_batch()[0]))
