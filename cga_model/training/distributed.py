"""Process-group facts for DDP under ``torchrun`` (gloo on CPU, nccl on CUDA); one process without it."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class DistributedRun:
    """Rank, world size, whether this process logs and saves, and the device it trains on.

    ``WORLD_SIZE > 1`` (set by ``torchrun``) starts the process group; each rank then takes
    ``cuda:<rank>`` when ``device`` is CUDA.
    """

    def __init__(self, device: str):
        self.enabled = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1
        self.main = self.rank == 0
        self.device = torch.device(f"cuda:{self.rank}" if self.enabled and device.startswith("cuda") else device)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()
