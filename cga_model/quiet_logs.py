"""A library's logger held quiet for one block; imports nothing heavy."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def quiet_logger(logger: logging.Logger, level: int):
    """Inside the block ``logger`` emits only records of ``level`` and above; its own level is put back after."""
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
