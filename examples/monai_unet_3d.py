"""Category-guided attention at the bottleneck of a MONAI 3-D UNet, trained a few steps on synthetic
BraTS-like data. ``python -m examples.monai_unet_3d`` (needs ``pip install .[monai]``)."""

from __future__ import annotations

import numpy as np
import torch
from monai.networks.nets import UNet

from cga_model.data import normalize
from cga_model.dropin import CategoryGuidedAttention, guided_attention_losses
from cga_model.labels import labels_to_classes
from cga_model.losses import softmax_dice_loss
from cga_model.synth import synthesize_case

BOTTLENECK = "model.1.submodule.1.submodule.1.submodule"  # 64 channels at 1/8 resolution


def make_unet() -> UNet:
    return UNet(spatial_dims=3, in_channels=4, out_channels=4, channels=(8, 16, 32, 64), strides=(2, 2, 2))


def make_wrapped(mode: str = "hard") -> CategoryGuidedAttention:
    return CategoryGuidedAttention(make_unet(), BOTTLENECK, num_classes=4, head="input", in_channels=4, rate=8, mode=mode)


def synthetic_batch(batch: int = 2, size: int = 32, seed: int = 0):
    images, labels = [], []
    for i in range(batch):
        image, seg = synthesize_case((size, size, size), seed=seed + i)
        modality = image[[0, 2, 1, 3]]  # flair, t1ce, t1, t2
        images.append(normalize(modality))
        labels.append(labels_to_classes(seg).astype(np.int64))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))


def train(steps: int = 8, mode: str = "hard", seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    model = make_wrapped(mode)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = synthetic_batch(seed=seed)
    losses = []
    for _ in range(steps):
        result = model(x)
        extra = guided_attention_losses(result, y)
        loss = softmax_dice_loss(result.output, y) + extra.attention + 0.1 * extra.inter
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    from .cost import compare

    print("losses:", [round(v, 3) for v in train()])
    host, wrapped = make_unet(), make_wrapped()
    print("| network | parameters | GFLOPs (forward) | saved for backward |\n|---|---|---|---|")
    print(compare("MONAI UNet 3-D, 2x4x32^3", host, wrapped, synthetic_batch()[0]))
