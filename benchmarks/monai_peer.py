"""The MONAI peer of ``benchmarks/learning.py``: SegResNet trained and applied the MONAI way.

MONAI's network (``SegResNet``, ``init_filters`` = the CGA U-Net's base width), loss
(``DiceCELoss`` over the K softmax classes), transforms (``NormalizeIntensityd`` on the brain,
``RandCropByPosNegLabeld`` with 1 of 3 crops on tumour as ours, flips, intensity scale and
shift) and ``sliding_window_inference``; the same cases, crops, batch and optimiser steps as the
CGA U-Net runs, Adam at the same learning rate with MONAI's cosine schedule.
"""

from __future__ import annotations

import numpy as np
import torch
from monai import transforms as mt
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.networks.nets import SegResNet
from monai.utils import set_determinism

from cga_model.data.cases import load_case
from cga_model.data.layouts import find_cases

INFERENCE_ROI = (128, 128, 128)


def _cases(folder) -> list:
    """``[{"image": (4, *S) float32, "label": (1, *S) int64}]`` of every case under ``folder``, cropped to the brain."""
    crop = mt.CropForegroundd(keys=("image", "label"), source_key="image", allow_smaller=True)
    cases = []
    for source in find_cases(folder):
        case = load_case(source)
        item = {"image": case.image.astype(np.float32), "label": case.classes[None].astype(np.int64)}
        cases.append(crop(item))
    return cases


def _train_transforms(crop) -> mt.Compose:
    return mt.Compose(
        [
            mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
            mt.RandCropByPosNegLabeld(keys=("image", "label"), label_key="label", spatial_size=crop, pos=1, neg=2),
            mt.RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=0),
            mt.RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=1),
            mt.RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=2),
            mt.RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        ]
    )


def train_segresnet(train_dir, *, steps: int, crop, batch_size: int, base_channels: int, seed: int, lr: float):
    """A SegResNet trained for ``steps`` optimiser steps of ``batch_size`` random crops of the cases under
    ``train_dir``."""
    set_determinism(seed)
    cases = _cases(train_dir)
    transform = _train_transforms(tuple(crop))
    model = SegResNet(spatial_dims=3, init_filters=base_channels, in_channels=4, out_channels=4, dropout_prob=0.2)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        batch = [transform(cases[i])[0] for i in rng.integers(0, len(cases), batch_size)]
        image = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float()
        label = torch.stack([torch.as_tensor(b["label"]) for b in batch])
        optimiser.zero_grad(set_to_none=True)
        loss(model(image), label).backward()
        optimiser.step()
        schedule.step()
    set_determinism(None)
    return model.eval()


@torch.no_grad()
def predict_segresnet(model, image: np.ndarray) -> np.ndarray:
    """Class indices ``(*S)`` uint8 of one case's ``image (4, *S)``: MONAI normalisation, then sliding windows."""
    normal = mt.NormalizeIntensity(nonzero=True, channel_wise=True)(torch.as_tensor(image, dtype=torch.float32))
    logits = sliding_window_inference(
        normal[None], INFERENCE_ROI, sw_batch_size=1, predictor=model, overlap=0.5, mode="gaussian"
    )
    return logits[0].argmax(0).to(torch.uint8).numpy()
