"""Shared by the examples: a few training steps with the guided-attention losses, and the cost of adding them."""

from __future__ import annotations

import numpy as np
import torch

from cga_model.data.cases import normalize
from cga_model.data.synth import synthesize_case
from cga_model.nn.cost import flops_of, params_of, saved_bytes_of


def cost(fn, x, model) -> dict:
    """Parameters, forward FLOPs and bytes saved for backward of ``fn(x)`` (``cga_model.nn.cost``, as the
    benchmarks)."""
    return {"params": params_of(model), "flops": flops_of(fn, x), "saved_bytes": saved_bytes_of(fn, x)}


def compare(name, *, host, wrapped, x) -> str:
    a, b = cost(host, x, host), cost(wrapped, x, wrapped)
    return (
        f"| {name} | {a['params']:,} -> {b['params']:,} | {a['flops'] / 1e9:.3f} -> {b['flops'] / 1e9:.3f} "
        f"| {a['saved_bytes'] / 2**20:.1f} -> {b['saved_bytes'] / 2**20:.1f} MiB |"
    )


def train_steps(model, x, y, *, steps: int, seed: int = 0) -> list[float]:
    """``steps`` Adam steps of Dice + attention MSE + 0.1 * inter-class loss; returns the losses."""
    from cga_model.nn.dropin import guided_attention_losses
    from cga_model.nn.losses import softmax_dice_loss

    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
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


def synthetic_batch(batch: int = 2, size: int = 32, seed: int = 0):
    """Synthetic BraTS-like volumes: images (B, 4, S, S, S) normalised, class labels (B, S, S, S)."""
    images, labels = [], []
    for i in range(batch):
        image, seg = synthesize_case((size, size, size), seed=seed + i)
        images.append(normalize(image))  # modalities in the tensor order of cga_model.data.layouts.MODALITIES
        labels.append(seg.astype(np.int64))  # synthesize_case gives class indices
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))
