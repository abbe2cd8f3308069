"""``TrainConfig``: every option of a training run, checked in one pass before anything is read or written.

``TrainConfig.check()`` refuses any option out of its range, naming its ``cga train`` flag, the value
and the range: ``--lr`` finite and > 0, ``--weight-decay`` finite and >= 0, ``--epochs``,
``--batch-size``, ``--val-every`` at least 1, ``--workers`` at least 0, ``--crop`` three positive
multiples of 8, ``--foreground-share`` in [0, 1], ``--val-fraction`` and ``--sequence-dropout`` in
[0, 1). ``check_split`` refuses a ``--val-fraction`` the dataset cannot honour. ``cga train``,
``train()`` and every rank under ``torchrun`` run them first (``loop.set_up``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .. import flag_checks
from ..data.sampling import DEFAULT_FOREGROUND_SHARE
from ..nn.config import ModelConfig
from ..nn.loss_config import LossConfig


@dataclass
class TrainConfig:
    """Everything a run needs; saved in every checkpoint (``to_dict``)."""

    data: str
    out: str
    epochs: int = 500
    crop: tuple = (128, 128, 128)
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    seed: int = 0
    workers: int | None = None  # loader processes; None: default_workers() (the cores, capped, shared among ranks)
    foreground_share: float = DEFAULT_FOREGROUND_SHARE  # share of each batch centred on a foreground voxel
    sequence_dropout: float = 0.0  # each sample's each sequence zero-filled with this probability, never all
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)  # the options of CGALoss
    # robustness
    max_bad_steps: int = 10
    # the split (set_up fills them): the IDs of the training and the validation cases
    train_cases: list = field(default_factory=list)
    val_cases: list = field(default_factory=list)
    # validation: every val_every epochs (and after the last); voxels outside the brain are background
    # unless brain_mask=False
    val_every: int = 5
    brain_mask: bool = True
    # the data (layouts.data_record): the layout (None: detect it from the file names), its label scheme and
    # the channel order; set_up fills them and sets model.num_classes to the scheme's class count
    layout: str | None = None
    label_scheme: dict = field(default_factory=dict)
    channels: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain types only, as stored in checkpoints (``config["model"]`` is ``ModelConfig.to_dict()``,
        ``config["loss"]`` is ``LossConfig.to_dict()``)."""
        return {**asdict(self), "model": self.model.to_dict(), "loss": self.loss.to_dict()}

    def check(self) -> None:
        """Refuse (``ValueError``) the first option out of its range, naming its flag; reads and writes nothing."""
        flag_checks.number("--lr", self.lr, 0, low_open=True)
        flag_checks.number("--weight-decay", self.weight_decay, 0)
        flag_checks.whole("--epochs", self.epochs, 1)
        flag_checks.whole("--batch-size", self.batch_size, 1)
        flag_checks.window("--crop", self.crop)
        flag_checks.number("--foreground-share", self.foreground_share, 0, 1)
        flag_checks.number("--val-fraction", self.val_fraction, 0, 1, high_open=True)
        flag_checks.number("--sequence-dropout", self.sequence_dropout, 0, 1, high_open=True)
        flag_checks.whole("--val-every", self.val_every, 1)
        flag_checks.whole("--seed", self.seed, 0)
        if self.workers is not None:
            flag_checks.whole("--workers", self.workers, 0)
        flag_checks.whole("max_bad_steps", self.max_bad_steps, 1)


def check_split(val_fraction: float, n_cases: int, data: str) -> None:
    """Refuse a ``--val-fraction`` above 0 for a dataset of one case (nothing left to train on once one is held out)."""
    if val_fraction > 0 and n_cases < 2:
        raise ValueError(
            f"--val-fraction {val_fraction}: {data} holds {n_cases} case, and holding one out for validation leaves "
            "none to train on; pass --val-fraction 0 (best.pt then follows the training loss) or add cases"
        )
