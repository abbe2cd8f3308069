"""How many worker processes a command starts by default (loader workers, preprocessing); imports no torch."""

from __future__ import annotations

import os

MAX_DEFAULT_WORKERS = 8


def default_workers(processes: int = 1) -> int:
    """Workers per process: the CPU cores this process may use, shared among ``processes`` (DDP
    ranks), capped at ``MAX_DEFAULT_WORKERS``; at least 1."""
    return max(1, min(len(os.sched_getaffinity(0)) // max(processes, 1), MAX_DEFAULT_WORKERS))
