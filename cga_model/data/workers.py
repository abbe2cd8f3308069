"""How many worker processes a command starts by default (loader workers, preprocessing), and Ctrl-C while they
are started; imports no torch."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

MAX_DEFAULT_WORKERS = 8


def default_workers(processes: int = 1) -> int:
    """Workers per process: the CPU cores this process may use, shared among ``processes`` (DDP
    ranks), capped at ``MAX_DEFAULT_WORKERS``; at least 1."""
    return max(1, min(len(os.sched_getaffinity(0)) // max(processes, 1), MAX_DEFAULT_WORKERS))


@contextlib.contextmanager
def interrupts_held_back():
    """Hold Ctrl-C (SIGINT) back while worker processes are started, and raise it (``KeyboardInterrupt``) once
    they are.

    A SIGINT that arrives while the process forks is otherwise raised inside one of Python's at-fork callbacks
    (logging's lock release), which prints a traceback and drops it, so the command goes on as if never
    interrupted. Here a handler only notes it meanwhile (blocking the signal would not do: another thread, such
    as a progress bar's, would take it). Outside the main thread, where no handler can be set, and where SIGINT is
    ignored, nothing is held."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # no handler can be set here, or Ctrl-C is ignored (a command started in the background): kept so
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught:
        raise KeyboardInterrupt
