"""What ``--resume`` must agree on with the run it continues: the stored config of ``last.pt`` against
the requested one, after the model check (``checkpoint.check_compatible``).

``check_same_run`` refuses the first contradiction (naming the option, both values and what to do):
the layout, ``--seed``, ``--val-fraction``, the data (the training and validation case IDs), ``--lr``,
``--weight-decay``, ``--crop``, ``--batch-size``, ``--foreground-share``, ``--sequence-dropout`` and every
loss option.
``--epochs``, ``--val-every``, ``--workers``, ``--device`` and ``--no-brain-mask`` may change.
``check_epochs_left`` refuses an ``--epochs`` the run has already reached.
"""

from __future__ import annotations

from pathlib import Path

# (stored config key, flag): compared in this order
SAME_RUN = (
    ("layout", "--layout"),
    ("seed", "--seed"),
    ("val_fraction", "--val-fraction"),
    ("train_cases", "--data"),
    ("val_cases", "--data"),
    ("lr", "--lr"),
    ("weight_decay", "--weight-decay"),
    ("crop", "--crop"),
    ("batch_size", "--batch-size"),
    ("foreground_share", "--foreground-share"),
    ("sequence_dropout", "--sequence-dropout"),
)


def _plain(value):
    """Tuples as lists, recursively (a stored config holds what ``torch.load`` gives back)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _show(value) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} cases ({', '.join(map(str, value[:3]))}, ...)"
    if isinstance(value, list):
        return " ".join(map(str, value)) if value else "none"
    return str(value)


def _pairs(saved: dict, requested: dict):
    """``(flag, key, stored, requested)`` of every compared option the stored config holds, in order."""
    for key, flag in SAME_RUN:
        if key in saved:
            yield flag, key, _plain(saved[key]), _plain(requested[key])
    for key, value in _plain(saved.get("loss", {})).items():
        if key in requested["loss"]:
            yield "--" + key.replace("_", "-"), f"loss option {key}", value, _plain(requested["loss"][key])


def check_same_run(saved: dict, requested: dict, path: Path) -> None:
    """Refuse (``ValueError``) the first option of ``requested`` (``TrainConfig.to_dict()``) that differs from the
    config ``saved`` in the checkpoint ``path``."""
    for flag, key, old, new in _pairs(saved, requested):
        if old != new:
            what = "cases" if key.endswith("_cases") else key
            raise ValueError(
                f"--resume: {flag} contradicts the run in {path.parent}: {what} {_show(new)} requested, "
                f"{_show(old)} in {path.name}; resume with the run's {flag}, or start a new run "
                "(--overwrite, or another --out)"
            )


def check_epochs_left(done: int, epochs: int, out: Path) -> None:
    """Refuse resuming a run that has trained ``done`` epochs with ``--epochs`` ``epochs`` <= ``done``."""
    if epochs <= done:
        raise ValueError(
            f"--resume --epochs {epochs}: the run in {out} has already trained {done} epoch(s), nothing is left; "
            f"pass --epochs above {done} to train on (its learning rate then decays over the new count)"
        )
