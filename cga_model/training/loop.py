"""Training loop of the CGA U-Net: single process, or DDP under ``torchrun`` (gloo on CPU, nccl on CUDA).

Adam (amsgrad, weight decay 1e-5), poly learning rate (power 0.9), the two-stage CGALoss,
AMP on CUDA, a tqdm bar with the loss terms, ``metrics.jsonl`` and ``curves.png`` in the run
folder, validation Dice (WT/TC/ET) per epoch, ``last.pt`` every epoch and ``best.pt``, both
written atomically. ``resume=True`` continues after the epoch stored in ``last.pt``; every
epoch seeds its own RNG streams from ``(seed, epoch, rank)``, so a resumed run repeats the
same data order and augmentations as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ..nn.checkpoint import check_compatible, load_checkpoint, model_config, save_checkpoint
from ..data.dataset import BratsDataset, find_cases, load_case, make_loader, normalize, pad_to_multiple
from ..nn.losses import CGALoss
from ..evaluation.metrics import dice, region_mask
from ..data.labels import classes_to_labels
from ..nn.network import CGAUNet


@dataclass
class TrainConfig:
    """Everything a run needs; saved in every checkpoint (as a plain dict)."""

    data: str
    out: str
    epochs: int = 500
    crop: tuple = (128, 128, 128)
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    seed: int = 0
    workers: int = 0
    device: str = "cpu"
    # model
    in_channels: int = 4
    num_classes: int = 4
    base_channels: int = 16
    norm: str = "gn"
    sam: bool = True
    intra: bool = True
    intra_classes: Optional[list] = None
    inter: bool = True
    attention_rate: int = 8
    mask_mode: str = "hard"
    dropout: float = 0.2
    # loss
    dice_weight: float = 1.0
    attention_weight: float = 1.0
    inter_weight: float = 0.1
    inter_form: str = "paper"
    inter_start_epoch: int = 20
    inter_sign: float = 1.0
    # robustness
    max_bad_steps: int = 10
    val_cases: list = field(default_factory=list)


def build_model(config: dict) -> CGAUNet:
    return CGAUNet(dropout=config.get("dropout", 0.2), **model_config(config))


def split_cases(cases: list[Path], val_fraction: float, seed: int):
    """Deterministic train/validation split by ``seed`` (at least one case on each side when possible)."""
    order = list(cases)
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(len(order) * val_fraction)), len(order) - 1) if val_fraction > 0 and len(order) > 1 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def poly_lr(epoch: int, epochs: int, power: float = 0.9) -> float:
    return (1 - epoch / epochs) ** power


class _Dist:
    """Process-group facts: rank, world size, whether this process logs and saves."""

    def __init__(self, device: str):
        self.enabled = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1
        self.main = self.rank == 0

    def barrier(self):
        if self.enabled:
            dist.barrier()


@torch.no_grad()
def validate(model, case_dirs, device) -> dict:
    """Mean Dice per region (WT, TC, ET) over whole validation volumes."""
    model.eval()
    scores = {"WT": [], "TC": [], "ET": []}
    for folder in case_dirs:
        case = load_case(folder)
        image = pad_to_multiple(normalize(case.image), 8)
        logits = model(torch.from_numpy(image)[None].to(device)).logits[0]
        pred = classes_to_labels(logits.argmax(0).cpu().numpy())[tuple(slice(0, s) for s in case.classes.shape)]
        truth = classes_to_labels(case.classes)
        for region in scores:
            scores[region].append(dice(region_mask(pred, region), region_mask(truth, region)))
    model.train()
    return {f"val_dice_{k}": float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Training loss terms and validation Dice against epoch, from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.nifti_io import atomic_write

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in ("loss", "dice", "attention", "inter"):
        ax1.plot(epochs, [r[key] for r in records], label=key)
    ax1.set_xlabel("epoch"), ax1.set_title("training loss terms"), ax1.legend(), ax1.grid(alpha=0.3)
    for key in ("val_dice_WT", "val_dice_TC", "val_dice_ET"):
        if key in records[0]:
            ax2.plot(epochs, [r[key] for r in records], label=key[-2:])
    ax2.set_xlabel("epoch"), ax2.set_ylim(0, 1), ax2.set_title("validation Dice"), ax2.legend(), ax2.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    s = (seed * 1_000_003 + epoch * 101 + rank) % (2**31)
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def train(config: TrainConfig, resume: bool = False, progress: bool = True):
    """Train; returns ``(model, last epoch's log record)``. Writes into ``config.out``."""
    ddp = _Dist(config.device)
    device = torch.device(config.device if not (ddp.enabled and config.device.startswith("cuda")) else f"cuda:{ddp.rank}")
    out = Path(config.out)
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError(f"output folder is not writable: {out}")
    train_dirs, val_dirs = split_cases(find_cases(config.data), config.val_fraction, config.seed)
    config.val_cases = [p.name for p in val_dirs]
    cfg = asdict(config)

    torch.manual_seed(config.seed)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, amsgrad=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: poly_lr(e, config.epochs))
    start_epoch, best = 0, -1.0
    if resume:
        state = load_checkpoint(out / "last.pt")
        check_compatible(state["config"], cfg, out / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = state["epoch"] + 1, state["best"]
    net = DistributedDataParallel(model) if ddp.enabled else model

    dataset = BratsDataset(train_dirs, crop=config.crop, augment=True)
    sampler = DistributedSampler(dataset, num_replicas=ddp.world, rank=ddp.rank, seed=config.seed) if ddp.enabled else None
    criterion = CGALoss(config.dice_weight, config.attention_weight, config.inter_weight, config.inter_form, config.inter_start_epoch, config.inter_sign)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    log_path, record, bad_steps = out / "metrics.jsonl", {}, 0

    for epoch in range(start_epoch, config.epochs):
        _seed_epoch(config.seed, epoch, ddp.rank)
        if sampler is not None:
            sampler.set_epoch(epoch)
        loader = make_loader(dataset, config.batch_size, shuffle=True, workers=config.workers, sampler=sampler, seed=config.seed * 7919 + epoch)
        sums = {"loss": 0.0, "dice": 0.0, "attention": 0.0, "inter": 0.0}
        steps = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (progress and ddp.main), leave=False)
        for batch in bar:
            image, labels = batch["image"].to(device), batch["labels"].to(device)
            with torch.autocast(device.type, enabled=use_amp):
                terms = criterion(net(image), labels, epoch)
            if not torch.isfinite(terms.total):
                bad_steps += 1
                warnings.warn(f"epoch {epoch + 1}: non-finite loss ({terms.total.item()}), step skipped", RuntimeWarning)
                if bad_steps >= config.max_bad_steps:
                    raise RuntimeError(f"{bad_steps} non-finite losses in a row; last good checkpoint: {out / 'last.pt'}")
                optimizer.zero_grad(set_to_none=True)
                continue
            bad_steps = 0
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            scaler.step(optimizer)
            scaler.update()
            for key, value in zip(sums, terms):
                sums[key] += value.item()
            steps += 1
            bar.set_postfix({k: f"{v / steps:.3f}" for k, v in sums.items()})
        scheduler.step()
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **{k: v / max(steps, 1) for k, v in sums.items()}}
        if ddp.main:
            if val_dirs:
                record.update(validate(model, val_dirs, device))
            score = np.nanmean([record.get(f"val_dice_{r}", float("nan")) for r in ("WT", "TC", "ET")]) if val_dirs else -record["loss"]
            state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                         epoch=epoch, best=max(best, float(score)), config=cfg, rng=torch.get_rng_state(), record=record)
            save_checkpoint(out / "last.pt", **state)
            if score > best:
                best = float(score)
                save_checkpoint(out / "best.pt", **state)
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            plot_curves(log_path, out / "curves.png")
            if progress:
                tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}" for k, v in record.items()))
        ddp.barrier()
    return model, record
