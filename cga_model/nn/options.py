"""What ``ModelConfig`` and ``LossConfig`` share: a field with its flag's metadata, and rebuilding from a dict."""

from __future__ import annotations

import dataclasses


def option(default, help: str, cli: bool = True, **flag):
    """A dataclass field whose ``metadata`` carries its ``cga train`` flag: ``help``, ``cli`` (False: no flag),
    and argparse settings (``choices``, ``type``, ``nargs``; ``flag``, ``action``, ``const`` to override)."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli, **flag})


def from_known_dict(cls, saved: dict, source: str, what: str):
    """``cls(**saved)``, refusing keys that are not fields of ``cls``, naming them, ``what`` and ``source``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {what} options {unknown}; known: {sorted(known)}")
    return cls(**saved)
