"""Process-group facts for DDP under ``torchrun`` (gloo on CPU, nccl on CUDA); one process without it.

``DistributedRun.agree(step)`` runs a step that may fail on one rank only (the main process's run-folder
checks and lock, its checkpoint writing) so that every rank learns of the failure and stops, instead of
waiting for the failed rank in its next collective: a refusal on rank 0 never leaves the others hanging.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class DistributedRun:
    """Rank, world size, whether this process logs and saves, and the device it trains on.

    ``WORLD_SIZE > 1`` (set by ``torchrun``) starts the process group, unless the caller has started one;
    each rank then takes ``cuda:<rank>`` when ``device`` is CUDA. ``close()`` ends the group it started.
    """

    def __init__(self, device: str):
        self.enabled = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.owns_group = self.enabled and not dist.is_initialized()
        if self.owns_group:
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1
        self.main = self.rank == 0
        self.device = torch.device(f"cuda:{self.rank}" if self.enabled and device.startswith("cuda") else device)
        if self.device.type == "cuda" and self.enabled:
            torch.cuda.set_device(self.device)  # all_gather_object on nccl uses the current device

    def close(self) -> None:
        """Ends the process group this run started (a caller's own group stays theirs), so the process exits
        cleanly: a group left open at exit lets gloo's threads abort it ("terminate called without an active
        exception")."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def agree(self, step, undo=None):
        """``step()`` on this rank, then (a barrier) every rank learns whether it failed anywhere. The lowest
        rank whose step raised re-raises its own error; every other rank calls ``undo(result)`` (when its step
        succeeded and ``undo`` is given) and raises ``PeerStopped`` naming that rank, so one line is printed
        however many ranks failed alike. Returns ``step()``'s result when it succeeded everywhere."""
        try:
            result, failure = step(), None
        except Exception as err:
            if not self.enabled:
                raise
            result, failure = None, err
        if not self.enabled:
            return result
        reports = [None] * self.world
        dist.all_gather_object(reports, None if failure is None else f"{type(failure).__name__}: {failure}")
        failed = [(rank, report) for rank, report in enumerate(reports) if report is not None]
        if not failed:
            return result
        if failed[0][0] == self.rank:
            raise failure
        if failure is None and undo is not None:
            undo(result)
        raise PeerStopped(*failed[0]) from failure


class PeerStopped(RuntimeError):
    """Another rank's step of ``DistributedRun.agree`` failed; that rank reports its error, so the ``cga``
    command line prints nothing more for this one (``reported_elsewhere``) and exits with status 2."""

    reported_elsewhere = True

    def __init__(self, rank: int, report: str):
        super().__init__(f"rank {rank} stopped ({report}); this rank stopped with it")
