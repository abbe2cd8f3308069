"""Category-guided attention in a small 2-D U-Net on 2-D slices (hard and soft masks).
``python -m examples.unet_2d``."""

from __future__ import annotations

import torch
from torch import nn

from cga_model.nn.dropin import CategoryGuidedAttention

from .common import synthetic_batch, train_steps


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.ReLU())


class UNet2D(nn.Module):
    """Two-level 2-D U-Net: ``(B, 4, H, W) -> (B, K, H, W)``; ``bottleneck`` is at 1/4 resolution."""

    def __init__(self, in_channels: int = 4, num_classes: int = 4, width: int = 16):
        super().__init__()
        self.enc1, self.enc2 = block(in_channels, width), block(width, 2 * width)
        self.bottleneck = block(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, 2), block(4 * width, 2 * width)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * width, width, 2, 2), block(2 * width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)  # (B, w, H, W)
        e2 = self.enc2(self.pool(e1))  # (B, 2w, H/2, W/2)
        b = self.bottleneck(self.pool(e2))  # (B, 4w, H/4, W/4)
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def make_wrapped(mode: str = "hard", head: str = "input") -> CategoryGuidedAttention:
    kwargs = dict(in_channels=4, rate=4) if head == "input" else dict(feature_channels=64)
    return CategoryGuidedAttention(
        UNet2D(), "bottleneck", num_classes=4, head=head, spatial_dims=2, mode=mode, **kwargs
    )


def slices(batch: int = 4, size: int = 64):
    x, y = synthetic_batch(batch=batch // 2, size=size)
    mid = size // 2
    return torch.cat([x[..., mid], x[..., mid - 4]]), torch.cat(
        [y[..., mid], y[..., mid - 4]]
    )  # (B, 4, H, W), (B, H, W)


def train(*, steps: int = 10, mode: str = "hard", head: str = "input", seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    x, y = slices()
    return train_steps(make_wrapped(mode, head), x, y, steps=steps, seed=seed)


if __name__ == "__main__":
    from .common import compare

    for mode in ("hard", "soft"):
        print(mode, "losses:", [round(v, 3) for v in train(mode=mode)])
    print("| network | parameters | GFLOPs (forward) | saved for backward |\n|---|---|---|---|")
    print(compare("2-D U-Net, 4x4x64^2", host=UNet2D(), wrapped=make_wrapped(), x=slices()[0]))
