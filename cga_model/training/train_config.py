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
from ..nn.options import option


@dataclass
class TrainConfig:
    """Everything a run needs; saved in every checkpoint (``to_dict``). The fields made with ``option`` are
    ``cga train``'s training flags (``cli.add_config_flags``), their help lines in the metadata."""

    data: str
    out: str
    epochs: int = option(500, "training epochs (poly learning rate over them)")
    crop: tuple = option(
        (128, 128, 128), "random crop size (multiples of 8)", type=int, nargs=3, metavar=("X", "Y", "Z")
    )
    batch_size: int = option(8, "crops per step (per process under DDP)")
    lr: float = option(1e-3, "Adam learning rate at epoch 0")
    weight_decay: float = option(1e-5, "Adam weight decay (L2 penalty, 0: none)")
    val_fraction: float = option(0.2, "share of the cases held out for validation Dice")
    seed: int = option(0, "seed of the split, the initial weights and every epoch's data order")
    workers: int | None = option(
        None,
        "loader worker processes (0: load in the main process; default: the CPU cores, at most 8, shared among "
        "DDP processes)",
        type=int,
    )
    foreground_share: float = option(
        DEFAULT_FOREGROUND_SHARE,
        "share of each batch centred on a voxel of a foreground class present in the case (the rest uniform in "
        "the brain box)",
    )
    sequence_dropout: float = option(
        0.0,
        "zero-fill each sample's each input sequence with probability P in [0, 1), never all of them, so the "
        "network tolerates missing sequences (cga predict --allow-missing)",
        metavar="P",
    )
    device: str = option("cpu", "cpu or cuda")
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)  # the options of CGALoss
    # robustness
    max_bad_steps: int = 10
    # the split (set_up fills them): the IDs of the training and the validation cases
    train_cases: list = field(default_factory=list)
    val_cases: list = field(default_factory=list)
    val_every: int = option(
        5,
        "validate every N epochs (and after the last): sliding windows at --crop over the held-out cases; best.pt "
        "on the mean Dice",
    )
    # voxels outside the brain are background at validation (and in predictions) unless brain_mask=False
    brain_mask: bool = True
    # the data (layouts.data_record): the layout (None: detect it from the file names), its label scheme and
    # the channel order; set_up fills them and sets model.num_classes to the scheme's class count
    layout: str | None = None
    label_scheme: dict = field(default_factory=dict)
    channels: list = field(default_factory=list)

    def __post_init__(self):
        self.crop = tuple(self.crop)

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
