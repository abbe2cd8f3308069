"""Run by tests/model/training/test_loop.py under torchrun: train briefly, then dump this rank's weights."""

import os
import sys

import torch
import torch.distributed as dist

from cga_model.nn.config import ModelConfig
from cga_model.nn.loss_config import LossConfig
from cga_model.training.loop import TrainConfig, train

data, out, dump = sys.argv[1:4]
config = TrainConfig(
    data=data,
    out=out,
    epochs=1,
    crop=(16, 16, 16),
    batch_size=1,
    model=ModelConfig(base_channels=4),
    val_fraction=0.0,
    loss=LossConfig(inter_start_epoch=0),
)
model, _ = train(config, progress=False)  # it starts the process group and ends it (it is train's own)
assert not dist.is_initialized()
torch.save(model.state_dict(), f"{dump}.rank{os.environ['RANK']}.pt")
