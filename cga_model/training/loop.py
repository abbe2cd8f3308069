"""Training loop of the CGA U-Net: single process, or DDP under ``torchrun`` (gloo on CPU, nccl on CUDA).

Adam (amsgrad, weight decay ``weight_decay``), poly learning rate (power 0.9), the two-stage
CGALoss, AMP on CUDA, a tqdm bar with the loss terms, ``metrics.jsonl`` and ``curves.png`` in the
run folder, ``last.pt`` every epoch and ``best.pt`` (the best mean validation Dice; minus the
training loss without validation cases), both written atomically, never with non-finite weights.
Validation (every ``val_every`` epochs and after the last) segments the held-out cases as
``cga predict`` does: sliding windows at the training crop, voxels outside the brain set to
background unless ``brain_mask=False``, and scores WT/TC/ET Dice. ``resume=True`` continues after
the epoch stored in ``last.pt``; every epoch seeds its own RNG streams from ``(seed, epoch, rank)``,
so a resumed run repeats the same data order and augmentations as an uninterrupted one.

``train`` is three named steps: ``set_up`` (the option check, the locked run folder, data, model,
optimiser, resume), ``train_one_epoch`` and ``end_of_epoch`` (validation, checkpoints, log, curves).
"""

from __future__ import annotations

import json
import math
import random
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data.file_safety import WriteFailed, atomic_append
from ..data.layouts import get_layout
from ..data.loader import TrainingCrops, make_loader, open_cases, training_batch
from ..data.sampling import CropBatchSampler
from ..data.workers import default_workers, interrupts_held_back
from ..evaluation.metrics import dice, region_mask
from ..nn.checkpoint import (
    check_compatible,
    data_record,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    saved_model_config,
)
from ..nn.layout import to_fast_layout
from ..nn.losses import CGALoss
from ..nn.network import CGAUNet
from ..nn.sliding_window import class_indices, segment_volume
from .curves import plot_curves
from .distributed import DistributedRun
from .preflight import require_labels
from .resume import check_epochs_left, check_same_run
from .run_folder import LOG_FILE, RunFolder, reconcile_log
from .train_config import TrainConfig, check_split

# Seeds of a run: epoch e on rank r draws from (seed * RUN_SEED_STRIDE + e * EPOCH_SEED_STRIDE + r) mod SEED_MODULUS,
# and its CropBatchSampler draws the order, crops and augmentations of epoch e from (seed * LOADER_SEED_STRIDE, e);
# so a resumed epoch repeats its data and augmentations, whatever the number of loader workers.
RUN_SEED_STRIDE = 1_000_003
EPOCH_SEED_STRIDE = 101
LOADER_SEED_STRIDE = 7919
SEED_MODULUS = 2**31
LOSS_TERMS = ("loss", "dice", "attention", "inter")  # the fields of LossTerms, as logged


def split_cases(cases: list[Path], val_fraction: float, seed: int):
    """Deterministic train/validation split by ``seed`` (at least one case on each side when possible)."""
    order = list(cases)
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(len(order) * val_fraction)), len(order) - 1) if val_fraction > 0 and len(order) > 1 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def poly_lr(epoch: int, epochs: int, power: float = 0.9) -> float:
    return (1 - epoch / epochs) ** power


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed torch, numpy and random for one epoch on one rank."""
    s = (seed * RUN_SEED_STRIDE + epoch * EPOCH_SEED_STRIDE + rank) % SEED_MODULUS
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


@torch.no_grad()
def validate(model, cases, case_ids, device, *, roi, brain_mask: bool = True) -> dict:
    """Mean Dice per region (WT, TC, ET) over the whole volumes of ``case_ids`` of ``cases`` (``open_cases``),
    segmented as ``cga predict`` does (``segment_volume``: sliding windows of ``roi``, the brain mask)."""
    model.eval()
    regions = get_layout(cases.layout).scheme.regions  # WT, TC, ET (and RC); GTV for MEN-RT
    scores = {region: [] for region in regions}
    for case_id in case_ids:
        image, classes = cases.validation_case(case_id)
        probs = segment_volume(model, torch.from_numpy(image).to(device), roi, brain_only=brain_mask)
        pred = class_indices(probs).cpu().numpy()
        for region in scores:
            scores[region].append(dice(region_mask(pred, region, regions), region_mask(classes, region, regions)))
    model.train()
    return {f"val_dice_{k}": float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


@dataclass
class Run:
    """The state ``set_up`` builds and the epoch steps share."""

    config: TrainConfig
    ddp: DistributedRun
    folder: RunFolder  # out, locked by the main process until ``folder.release()``
    model: CGAUNet
    net: torch.nn.Module  # the model, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: CGALoss
    scaler: torch.amp.GradScaler
    cases: object  # open_cases(config.data): a cache or a raw folder
    sampler: CropBatchSampler
    loader: torch.utils.data.DataLoader  # workers persist across epochs
    val_ids: list
    start_epoch: int = 0
    best: float = -math.inf  # the best score so far: any first score beats it, so best.pt exists after epoch 1
    bad_steps: int = 0

    @property
    def device(self) -> torch.device:
        return self.ddp.device

    @property
    def out(self) -> Path:
        return self.folder.out


def _resume(run: Run) -> None:
    """Continue from ``OUT/last.pt``: weights, optimiser, scheduler, epoch and best score, once the stored run
    agrees with the requested one (the model first, then ``resume.check_same_run``) and epochs are left."""
    path = run.out / "last.pt"
    state = load_checkpoint(path)
    check_compatible(saved_model_config(state, path), run.config.model, path)
    check_same_run(state.get("config", {}), run.config.to_dict(), path)
    check_epochs_left(state["epoch"] + 1, run.config.epochs, run.out)
    load_weights(run.model, state["model"], path, "the requested model options")
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.start_epoch, run.best = state["epoch"] + 1, state["best"]
    if run.ddp.main:
        reconcile_log(run.out, state)


def _record_data(config: TrainConfig, layout: str) -> None:
    """The layout, label scheme and channel order into ``config``; the network's class count follows the
    scheme (5 with RC)."""
    record = data_record(layout)
    config.layout, config.label_scheme, config.channels = record["layout"], record["label_scheme"], record["channels"]
    config.model = replace(
        config.model, num_classes=len(record["label_scheme"]["values"]), in_channels=len(record["channels"])
    )


def _open_data(config: TrainConfig):
    """The cases of ``config.data``, split and checked (``preflight``): ``(cases, train_ids, val_ids)``; fills
    the data record and the split into ``config``."""
    cases = open_cases(config.data, layout=config.layout)
    check_split(config.val_fraction, len(cases.case_ids), config.data)
    _record_data(config, cases.layout)
    train_ids, val_ids = split_cases(cases.case_ids, config.val_fraction, config.seed)
    require_labels(cases, train_ids, val_ids)
    config.train_cases, config.val_cases = train_ids, val_ids
    return cases, train_ids, val_ids


def _build(config: TrainConfig, ddp: DistributedRun, folder: RunFolder, cases, train_ids, val_ids) -> Run:
    """Model, optimiser, scheduler, loss, sampler and loader of a run."""
    torch.manual_seed(config.seed)
    model = to_fast_layout(CGAUNet(config.model).to(ddp.device), ddp.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, amsgrad=True)
    sampler = CropBatchSampler(
        len(train_ids),
        config.batch_size,
        config.foreground_share,
        seed=config.seed * LOADER_SEED_STRIDE,
        rank=ddp.rank,
        world=ddp.world,
    )
    workers = default_workers(ddp.world) if config.workers is None else config.workers
    loader = make_loader(
        TrainingCrops(cases, train_ids, config.crop, sequence_dropout=config.sequence_dropout),
        sampler,
        workers,
        pin_memory=ddp.device.type == "cuda",
    )
    return Run(
        config=config,
        ddp=ddp,
        folder=folder,
        model=model,
        net=DistributedDataParallel(model) if ddp.enabled else model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: poly_lr(e, config.epochs)),
        criterion=CGALoss(config.loss),
        scaler=torch.amp.GradScaler("cuda", enabled=ddp.device.type == "cuda"),
        cases=cases,
        sampler=sampler,
        loader=loader,
        val_ids=val_ids,
    )


def set_up(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> Run:
    """Step 1, before anything is trained: every option checked (``TrainConfig.check``), the run folder locked
    and checked (``RunFolder``: an earlier run stays until the first checkpoint of this one), the data split and
    checked, model, optimiser, scheduler, loss and loader built; then ``resume``. On a failure the lock is freed
    and the process group ended; otherwise ``train`` does both (``run.folder.release()``, ``run.ddp.close()``).
    Under ``torchrun`` the option check, the folder, data and resume steps are agreed (``DistributedRun.agree``):
    a refusal on one rank stops every rank at once."""
    ddp = DistributedRun(config.device)
    try:
        ddp.agree(config.check)
        folder = ddp.agree(
            lambda: RunFolder(Path(config.out), resume=resume, overwrite=overwrite, main=ddp.main),
            undo=RunFolder.release,
        )
    except BaseException:
        ddp.close()
        raise
    try:
        cases, train_ids, val_ids = ddp.agree(lambda: _open_data(config))
        run = _build(config, ddp, folder, cases, train_ids, val_ids)
        if resume:
            ddp.agree(lambda: _resume(run))
    except BaseException:
        folder.release()
        ddp.close()
        raise
    return run


def _last_good(run: Run) -> str:
    """Names the checkpoint to fall back on; an epoch without a good step never writes one."""
    last = run.out / "last.pt"
    if run.folder.replaces:
        return f"the earlier run in {run.out} is kept as it was (--overwrite replaces it only after a first checkpoint)"
    return (
        f"last good checkpoint: {last}"
        if last.is_file()
        else "last good checkpoint: none (no epoch finished with finite losses)"
    )


def _train_step(run: Run, batch: dict, epoch: int):
    """One optimiser step; returns the loss terms, or None for a skipped non-finite step."""
    image, labels = training_batch(batch, run.device)
    with torch.autocast(run.device.type, enabled=run.scaler.is_enabled()):
        terms = run.criterion(run.net(image), labels, epoch)
    run.optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(terms.total):
        run.bad_steps += 1
        warnings.warn(
            f"epoch {epoch + 1}: non-finite loss ({terms.total.item()}), step skipped", RuntimeWarning, stacklevel=2
        )
        if run.bad_steps >= run.config.max_bad_steps:
            raise RuntimeError(f"{run.bad_steps} non-finite losses in a row; {_last_good(run)}")
        return None
    run.bad_steps = 0
    run.scaler.scale(terms.total).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return terms


def train_one_epoch(run: Run, epoch: int, progress: bool = True) -> dict:
    """Step 2: seed the epoch, one pass over the training crops; returns the log record (mean loss terms, lr)."""
    config = run.config
    seed_epoch(config.seed, epoch, run.ddp.rank)
    run.sampler.set_epoch(epoch)
    sums, steps = dict.fromkeys(LOSS_TERMS, 0.0), 0
    with interrupts_held_back():  # the loader's workers fork here: a Ctrl-C meanwhile is raised after, not dropped
        batches = iter(run.loader)
    bar = tqdm(
        batches,
        total=len(run.loader),
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=not (progress and run.ddp.main),
        leave=False,
    )
    for batch in bar:
        terms = _train_step(run, batch, epoch)
        if terms is None:
            continue
        for key, value in zip(sums, terms):
            sums[key] += value.item()
        steps += 1
        bar.set_postfix({k: f"{v / steps:.3f}" for k, v in sums.items()})
    if steps == 0:
        raise RuntimeError(
            f"epoch {epoch + 1}: every step had a non-finite loss, nothing was learnt; {_last_good(run)}"
        )
    run.scheduler.step()
    return {
        "epoch": epoch + 1,
        "lr": run.optimizer.param_groups[0]["lr"],
        **{k: v / max(steps, 1) for k, v in sums.items()},
    }


def validation_due(config: TrainConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) ends with a validation: every ``val_every`` epochs and after the last."""
    return (epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs


def _epoch_score(run: Run, epoch: int, record: dict):
    """The score ``best.pt`` is chosen on: mean validation Dice on validation epochs (None on the others),
    minus the training loss when there are no validation cases. Adds the validation Dice to ``record``."""
    if not run.val_ids:
        return -record["loss"]
    if not validation_due(run.config, epoch):
        return None
    record.update(
        validate(run.model, run.cases, run.val_ids, run.device, roi=run.config.crop, brain_mask=run.config.brain_mask)
    )
    return float(np.nanmean([value for key, value in record.items() if key.startswith("val_dice_")]))


def _check_finite_weights(run: Run, epoch: int) -> None:
    """Refuse to go on (and so to save) once a weight is NaN or infinite: each rank holds the same weights."""
    for name, tensor in run.model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RuntimeError(
                f"epoch {epoch + 1}: weight {name} is no longer finite (training diverged), no checkpoint written; "
                f"lower --lr (now {run.config.lr}); {_last_good(run)}"
            )


def _save_epoch(run: Run, epoch: int, record: dict, score) -> None:
    """``best.pt`` on a better ``score``, ``last.pt``, the log line and the curves (the main process). ``best.pt``
    comes first: the ``best`` that ``last.pt`` stores is then always the score of the epoch in ``best.pt``. A
    failed write raises ``WriteFailed`` naming the file and the space left, and what ``--resume`` continues from."""
    state = dict(
        model=run.model.state_dict(),
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        epoch=epoch,
        best=run.best if score is None else max(run.best, score),
        config=run.config.to_dict(),
        rng=torch.get_rng_state(),
        record=record,
    )
    saved = epoch - 1  # the epoch (0-based) last.pt holds once it is written; -1: none of this run yet
    try:
        with run.folder.replacing():
            if score is not None and score > run.best:
                save_checkpoint(run.out / "best.pt", **state)
            save_checkpoint(run.out / "last.pt", **state)
            saved = epoch
            atomic_append(run.out / LOG_FILE, json.dumps(record) + "\n", what="the training log")
            plot_curves(run.out / LOG_FILE, run.out / "curves.png")
    except OSError as err:
        raise WriteFailed(f"{' '.join(str(err).split())}; {_after_failed_save(run, saved)}") from err
    run.best = state["best"]


def _after_failed_save(run: Run, saved: int) -> str:
    """What a run stopped by a failed write keeps, and how to go on (``saved``: the epoch in ``last.pt``)."""
    last = run.out / "last.pt"
    if run.folder.replaces:  # the first epoch of --overwrite: the earlier run was put back
        return _last_good(run)
    if saved < 0 or not last.is_file():
        return "no epoch of this run is saved: once there is space, run the same command again"
    return f"{last} holds epoch {saved + 1}: once there is space, run the same command with --resume to continue"


def end_of_epoch(run: Run, epoch: int, record: dict, *, progress: bool = True) -> None:
    """Step 3: finite weights (every rank), then in the main process validation Dice when due, ``last.pt``
    (and ``best.pt`` on a better score), log line, curves (``_save_epoch``); the other ranks wait for it and stop
    with it when it fails (``DistributedRun.agree``)."""
    _check_finite_weights(run, epoch)
    run.ddp.agree(lambda: _main_end_of_epoch(run, epoch, record, progress) if run.ddp.main else None)


def _main_end_of_epoch(run: Run, epoch: int, record: dict, progress: bool) -> None:
    """The main process's part of ``end_of_epoch``: score, checkpoints, log line, curves, the printed record."""
    _save_epoch(run, epoch, record, _epoch_score(run, epoch, record))
    if progress:
        tqdm.write(
            " ".join(
                f"{k}={v:.4f}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}" for k, v in record.items()
            )
        )


def train(config: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False):
    """Train; returns ``(model, last epoch's log record)``. Writes into ``config.out``: a folder holding
    an earlier run needs ``resume`` (continue it) or ``overwrite`` (replace it, once this run's first
    epoch is saved). The folder is locked for the whole run."""
    run = set_up(config, resume, overwrite)
    record = {}
    try:
        for epoch in range(run.start_epoch, config.epochs):
            record = train_one_epoch(run, epoch, progress)
            end_of_epoch(run, epoch, record, progress=progress)
    finally:
        run.folder.release()
        run.ddp.close()
    return run.model, record
